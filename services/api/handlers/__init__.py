"""Tornado request handlers, one module per resource; ``base`` holds the
request pipeline every handler inherits. Handlers validate, call the storage
RPC API and shape the reply; they must not hold state between requests.
"""
