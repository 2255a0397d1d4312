"""The Mastercard (Finicity) platform family, shared by mastercard-us and mastercard-au.

Both regions run the same platform: the same payload shapes, status codes and error bodies, with a few differences
(header names, API versions, currency, how payment coordinates look). Those differences are data in `region.py`;
`translate.py` turns upstream payloads into canonical models and back, `errors.py` turns upstream errors into
canonical ones. Neither does any I/O.
"""
