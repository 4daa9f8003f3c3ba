/**
 * The event-time traces again, with aggregation state in two worker threads
 * (`sluice.sql.streaming.aggregation.workers = 2`, exec/parallel.ts): every expected output must stay the
 * same, restarts included — the workers own the same partitions and files as the query's thread would.
 */
process.env.SLUICE_TEST_AGGREGATION_WORKERS = '2';
await import('./eventtime.test.js');
