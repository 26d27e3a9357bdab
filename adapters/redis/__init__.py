"""Redis adapter: the verification store and its client set-up."""
