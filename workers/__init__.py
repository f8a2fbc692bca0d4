"""The processes that step the walkers and run the policy on them (`vector.WalkerPool`)."""
