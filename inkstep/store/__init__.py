"""Storage adapters: Redis streams and presence, Postgres, blob stores."""
