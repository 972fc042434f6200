"""Log lines: one JSON object per record, the event name and its fields side by side."""

import json
import logging

from gql_blog.logs import JsonFormatter


def test_record_becomes_one_json_line_with_its_extra_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": "gql_blog.app",
            "levelname": "INFO",
            "msg": "graphql.request",
            "request_id": "r1",
            "statements": 3,
        }
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "logger": "gql_blog.app",
        "event": "graphql.request",
        "request_id": "r1",
        "statements": 3,
    }
