"""The demo customer site for ``fieldmon up --demo``: recordings, faults, responders."""
