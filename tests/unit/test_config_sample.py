"""The generated sample config stays current and every option documents its values.

``etc/herald.conf.sample`` is what operators copy; it must be exactly what
``oslo-config-generator`` produces from the code today (``make
sample-config`` regenerates it), and every Herald option's help text must
name its possible values (the architecture's rule for ``herald.conf``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from oslo_config import cfg

from herald.common import config

REPO = Path(__file__).resolve().parents[2]
GENERATOR_CONF = REPO / "etc" / "herald-config-generator.conf"
SAMPLE = REPO / "etc" / "herald.conf.sample"

# Options that list_opts() shows in the sample but that another library
# defines (and documents in its own words).
BORROWED_OPTS = {("DEFAULT", "transport_url")}


def test_sample_config_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "herald.conf.sample"
    # The generator runs in a subprocess, as `make sample-config` does: it
    # parses its own command line on a ConfigOpts of its own.
    result = subprocess.run(
        [sys.executable, "-m", "oslo_config.generator",
         "--config-file", str(GENERATOR_CONF), "--output-file", str(fresh)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert fresh.read_text() == SAMPLE.read_text(), (
        "etc/herald.conf.sample is stale: run `make sample-config` and commit it"
    )


def test_generator_config_names_the_herald_namespace() -> None:
    text = GENERATOR_CONF.read_text()
    assert "namespace = herald" in text
    assert "output_file = etc/herald.conf.sample" in text
    assert "wrap_width = 79" in text


def test_every_option_names_its_possible_values() -> None:
    missing = []
    borrowed_seen = set()
    for group, opts in config.list_opts():
        for opt in opts:
            if (group, opt.dest) in BORROWED_OPTS:
                borrowed_seen.add((group, opt.dest))
                continue
            if "Possible values" not in (opt.help or ""):
                missing.append(f"[{group}] {opt.dest}")
    assert not missing, f"help text without 'Possible values': {missing}"
    # A borrowed option that disappeared from list_opts() means this
    # exception list is stale and may hide a Herald option later.
    assert borrowed_seen == BORROWED_OPTS


def test_sample_documents_every_group() -> None:
    text = SAMPLE.read_text()
    for group, opts in config.list_opts():
        assert f"[{group}]" in text
        for opt in opts:
            assert f"#{opt.dest} =" in text, f"[{group}] {opt.dest} missing from the sample"


def test_deploy_example_sets_only_known_options() -> None:
    """deploy/herald.conf must not carry typos that oslo.config would ignore."""
    sections: dict[str, dict[str, list[str]]] = {}
    cfg.ConfigParser(str(REPO / "deploy" / "herald.conf"), sections).parse()
    known = {(group, opt.dest) for group, opts in config.list_opts() for opt in opts}
    unknown = [f"[{group}] {key}" for group, values in sections.items() for key in values
               if (group, key) not in known]
    assert not unknown, f"deploy/herald.conf sets unknown options: {unknown}"
    assert sections["storage"]["connection"][0].startswith("postgresql+psycopg://")
    assert sections["DEFAULT"]["transport_url"][0].startswith("rabbit://")
    assert sections["coordination"]["backend_url"][0].startswith("redis://")
