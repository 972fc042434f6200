// Runs every graphql-http server audit against the URL given as the first argument and prints
// the results as JSON: [{id, name, status: "ok" | "warn" | "error", reason}].
import { auditServer } from 'graphql-http';

const results = await auditServer({ url: process.argv[2] });
const shown = results.map(({ id, name, status, reason }) => ({ id, name, status, reason }));
process.stdout.write(JSON.stringify(shown));
