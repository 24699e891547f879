"""ASGI middleware, one concern per module, each the same small shape (``__init__(app, ...)``, ``__call__``).

They are composed, in order, in ``facetrace.service.app.middleware_stack``.
"""
