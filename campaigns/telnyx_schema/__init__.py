"""The Telnyx wire schema we speak: the Dial request's fields with their documented types, enums,
ranges and rules (`dial`), on a small field-spec language (`fields`).

A leaf: it imports nothing of the project, and the domain (campaign settings), the Telnyx client
and the simulator all import it, so a field's rule is written once and all three agree.
"""
