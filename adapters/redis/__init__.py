"""Redis adapters: verification store, request ledger, send limiter and plain codes."""
