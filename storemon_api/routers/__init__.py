"""One router per resource: the report requests of the contract, reports, health."""
