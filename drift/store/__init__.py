"""The event store: ORM models (:mod:`.models`), engine/session (:mod:`.db`), queries (:mod:`.repo`)."""
