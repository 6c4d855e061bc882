"""Request validation for the REST API: query strings, JSON bodies, and the
resource-specific rules of the Zaqar v2 contract.

These modules are pure functions over already-read request data and the
``[limits]`` options; they raise ``herald.common.errors`` / ``herald.api.errors``
types and must not perform I/O, call storage, or depend on Tornado.
"""
