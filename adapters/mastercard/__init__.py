"""The Mastercard (Finicity) platform family, shared by mastercard-us and mastercard-au.

Both regions run the same platform: the same payload shapes, status codes and error bodies, with a few differences
(header names, API versions, currency, how payment coordinates look). Those differences are data in `region.py`;
`translate.py` turns upstream payloads into canonical models and back, `errors.py` turns upstream errors into
canonical ones, `webhooks.py` verifies and reads Connect and report webhooks, `reports.py` reads report statuses.
None of these does any I/O. `decisioning.py` is the report mixin both adapters use, and `sandbox_webhooks.py` the
outbox both simulators send their webhooks from.
"""
