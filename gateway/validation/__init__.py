"""The validation layer: a request that fails here never reaches an upstream.

- body.py: read and structure JSON bodies into attrs request objects (field paths in every error);
- query.py: query-string parameters;
- requests.py: the canonical request objects;
- access.py: caller scopes and providers, provider capabilities.
"""
