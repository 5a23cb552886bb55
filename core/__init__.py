"""What every stage agrees on: domain types, settings, the error tree, ids, logging."""
