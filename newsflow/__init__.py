"""newsflow: RSS/Atom feeds -> article extraction -> Kafka -> deduplicated search index."""

__version__ = "0.1.0"
