"""The staff web console: handoff inbox, cases, appointments, volunteers, dashboard.

Empty until the console's issue: staff work cases with `yimen cases` meanwhile.
"""
