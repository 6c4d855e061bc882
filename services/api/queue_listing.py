"""One page of a queue-like collection: ``GET /v2/queues`` and ``GET /v2/topics``.

Both read the same query (``marker``, ``limit``, ``detailed``, ``name``;
every other parameter filters on metadata, integers compared as integers),
refuse the same limits, ask storage's ``queue_list`` and link the next
page with the parameters they were given. They differ in the document key,
the hrefs, the metadata defaults shown and whether ``with_count`` is
offered (queues only, rest-v2.md §10): the handler says which.

This module parses and shapes; it never calls storage itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from herald.api.query_string import QueryParams, looks_like_int, render_query
from herald.common.edge import limits as limit_rules
from herald.common.edge.limits import DEFAULT_PAGE

#: Query parameters that are not metadata filters. ``with_count`` is never a
#: filter, even where it is not offered.
_LIST_PARAMS = ("marker", "limit", "detailed", "name", "with_count")


@dataclasses.dataclass(frozen=True)
class ListQuery:
    marker: str | None
    limit: int | None
    detailed: bool | None
    name: str | None
    #: None where ``with_count`` is not offered or not given.
    with_count: bool | None
    filters: dict[str, Any]

    @property
    def page_size(self) -> int:
        return DEFAULT_PAGE if self.limit is None else self.limit


def parse(query: QueryParams, limits: Any, *, offers_count: bool) -> ListQuery:
    """The listing asked for, or BadRequest for a limit out of range."""
    filters: dict[str, Any] = {}
    for key in query.keys():
        if key not in _LIST_PARAMS:
            value = query.get_str(key) or ""
            filters[key] = int(value) if looks_like_int(value) else value
    listing = ListQuery(marker=query.get_str("marker"), limit=query.get_int("limit"),
                        detailed=query.get_bool("detailed"), name=query.get_str("name"),
                        with_count=query.get_bool("with_count") if offers_count else None,
                        filters=filters)
    limit_rules.queue_page(listing.limit, limits)
    return listing


def page(listing: ListQuery, stored: list[dict[str, Any]], path: str,
         href: Callable[[str], str],
         shown_metadata: Callable[[dict[str, Any] | None], dict[str, Any]],
         ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(items, links) of one page: name and href of each (plus its metadata
    with defaults when ``detailed``), and the ``next`` link after the last."""
    items = []
    for queue in stored:
        item: dict[str, Any] = {"name": queue["name"], "href": href(queue["name"])}
        if listing.detailed:
            item["metadata"] = shown_metadata(queue.get("metadata"))
        items.append(item)
    if not items:
        return items, []
    params: list[tuple[str, object]] = [
        (key, value) for key, value in (("limit", listing.limit), ("detailed", listing.detailed),
                                        ("name", listing.name),
                                        ("with_count", listing.with_count))
        if value is not None]
    params.extend(listing.filters.items())
    params.append(("marker", items[-1]["name"]))
    return items, [{"rel": "next", "href": f"{path}?{render_query(params)}"}]
