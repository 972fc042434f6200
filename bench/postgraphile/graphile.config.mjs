// PostGraphile 5 for gql_blog's benchmark: the Amber preset over gql_blog's tables, as a
// superuser (no row-level security), so it sees every row, as gql_blog's admin does.
// BENCH_DATABASE_URL and BENCH_PORT come from the bench (bench/servers.py).
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  // The index-behaviour plugin hides filters and orderings on columns without a leading index:
  // the feed's `published` condition and the comments' `created_at` order need them.
  disablePlugins: ["PgIndexBehaviorsPlugin"],
  pgServices: [
    makePgService({ connectionString: process.env.BENCH_DATABASE_URL, schemas: ["public"] }),
  ],
  grafserv: { host: "127.0.0.1", port: Number(process.env.BENCH_PORT), graphiql: false, watch: false },
  grafast: { explain: false },
};

export default preset;
