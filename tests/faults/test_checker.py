"""The invariant checker itself: it must catch what the scenarios look for.

Fabricated ledgers, no services: a lost message, a double claim, a changed
body and duplicates must each show in the verdict, and a clean run must not.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import (
    CLAIM_TTL,
    Ack,
    Ledger,
    Take,
    body_hash,
    check,
    throughput_recovery,
)

T0 = 1_000_000.0


def _ledger(n: int = 4) -> Ledger:
    ledger = Ledger()
    for i in range(n):
        ledger.ack(Ack(f"m{i}", body_hash({"seq": i}), "producer-0", T0 + i))
    return ledger


def _take(mid: int, claim: str, at: float, consumer: str = "consumer-0") -> Take:
    return Take(f"m{mid}", body_hash({"seq": mid}), consumer, claim, at, at + 0.01,
                CLAIM_TTL, True)


def test_clean_run_passes() -> None:
    ledger = _ledger()
    ledger.take(_take(0, "c1", T0 + 5))
    ledger.take(_take(1, "c1", T0 + 5))
    verdict = check(ledger, still_queued={"m2": body_hash({"seq": 2})},
                    in_dlq={"m3": body_hash({"seq": 3})})
    verdict.assert_ok()
    assert verdict.figures() == {
        "acknowledged": 4, "consumed": 2, "remaining": 1, "in_dlq": 1, "lost": 0,
        "double_claims": 0, "duplicates": 0, "corrupted": 0, "unacknowledged_consumed": 0}


def test_a_lost_message_fails_the_check() -> None:
    ledger = _ledger()
    ledger.take(_take(0, "c1", T0 + 5))
    ledger.take(_take(1, "c1", T0 + 5))
    verdict = check(ledger, still_queued={"m2": body_hash({"seq": 2})})
    assert verdict.lost == ["m3"]
    with pytest.raises(AssertionError, match="1 acknowledged message"):
        verdict.assert_ok()


def test_two_holders_inside_one_claim_window_is_a_double_claim() -> None:
    ledger = _ledger(1)
    ledger.take(_take(0, "c1", T0 + 5, "consumer-0"))
    ledger.take(_take(0, "c2", T0 + 20, "consumer-1"))  # c1 still live until T0+65
    verdict = check(ledger, still_queued={})
    assert verdict.double_claims == [("m0", "c1", "c2")]
    assert verdict.duplicates == 1
    with pytest.raises(AssertionError, match="double claims"):
        verdict.assert_ok()


def test_a_second_claim_after_the_window_is_only_a_duplicate() -> None:
    ledger = _ledger(1)
    ledger.take(_take(0, "c1", T0 + 5))
    ledger.take(_take(0, "c2", T0 + 5 + CLAIM_TTL + 1))
    verdict = check(ledger, still_queued={})
    verdict.assert_ok()
    assert verdict.duplicates == 1 and not verdict.double_claims


def test_a_changed_body_is_caught() -> None:
    ledger = _ledger(1)
    ledger.take(Take("m0", body_hash({"seq": 99}), "consumer-0", "c1", T0, T0, CLAIM_TTL,
                     True))
    with pytest.raises(AssertionError, match="bodies changed"):
        check(ledger, still_queued={}).assert_ok()


def test_stored_but_unacknowledged_posts_are_counted() -> None:
    ledger = _ledger(1)
    ledger.take(_take(0, "c1", T0 + 5))
    ledger.take(Take("m-unacked", "x", "consumer-0", "c1", T0 + 5, T0 + 5, CLAIM_TTL, True))
    verdict = check(ledger, still_queued={})
    verdict.assert_ok()
    assert verdict.unacknowledged_consumed == 1


def test_throughput_recovery() -> None:
    # 10/s before, nothing for 5 s, 10/s again from 2 s after the fault's end.
    acks = [T0 + i / 10 for i in range(50)] + [T0 + 12 + i / 10 for i in range(50)]
    assert throughput_recovery(acks, T0 + 10, baseline_rate=10) == pytest.approx(2.4)
    assert throughput_recovery(acks[:50], T0 + 10, baseline_rate=10) is None
