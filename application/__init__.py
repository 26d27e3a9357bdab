"""Use cases of the verification service and the ports they depend on."""
