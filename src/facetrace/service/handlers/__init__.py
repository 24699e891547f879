"""Rekognition operations, one module per area; every module here registers its handlers when imported.

See ``facetrace.service.operations`` for the handler contract and how to add a module.
"""
