"""Incidents: the contract's fault tracking, as a pure state machine plus its storage."""
