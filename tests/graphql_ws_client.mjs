// The npm graphql-ws client: subscribes at argv[2] with the token argv[3] and prints each result
// as one JSON line. Run by tests/test_subscriptions.py (node --experimental-websocket on Node 20).
import { createClient } from "graphql-ws";

const [url, token] = process.argv.slice(2);
const client = createClient({
  url,
  connectionParams: { authorization: `Bearer ${token}` },
  lazy: false,
});
client.subscribe(
  { query: 'subscription { postPublished(tag: "js") { title author { username } } }' },
  {
    next: (result) => console.log(JSON.stringify(result)),
    error: (error) => {
      console.error(error instanceof Error ? error.message : JSON.stringify(error));
      process.exit(1);
    },
    complete: () => process.exit(0),
  },
);
