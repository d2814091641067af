"""The JSON API on django-ninja (`v1.py` puts it together): one router per domain, typed schemas,
the OpenAPI document generated from them.

Its modules do not use `from __future__ import annotations`: ninja reads each operation's
parameter annotations at import time, as real types.
"""
