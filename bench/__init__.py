"""`make bench`: gql_blog against a naive N+1 resolver set, on SQLite and PostgreSQL."""
