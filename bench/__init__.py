"""`make bench`: gql_blog beside a hand-written floor and its rivals, on PostgreSQL."""
