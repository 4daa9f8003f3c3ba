/** The contract between the micro-batch loop and a streaming source (Spark's MicroBatchStream). */
import type { Offset } from '../checkpoint/checkpoint.js';
import type { Row, StructType } from '../types/index.js';

/** About how many rows a source hands over at once (Source.getBatch). */
export const CHUNK_ROWS = 10_000;

export interface ReadLimit {
  /** At most this many rows in the batch (`maxOffsetsPerTrigger`); undefined = all available. */
  maxRows?: number;
  /** Ignore the source's own limit (maxOffsetsPerTrigger): Trigger.Once, and AvailableNow's target. */
  unlimited?: boolean;
  /** Never read past this offset (Trigger.AvailableNow's target, fixed when the query starts). */
  upTo?: Offset;
}

export interface Source {
  readonly schema: StructType;
  /** Shown in progress as `sources[i].description`, e.g. `KafkaV2[Subscribe[user-events]]`. */
  describe(): string;
  /** The offset a new query starts from (`startingOffsets`); stored in `sources/<i>/0`. */
  initialOffset(): Promise<Offset>;
  /** The end offset of the next batch starting at `start`. Equal to `start` means no new data. */
  latestOffset(start: Offset, limit: ReadLimit): Promise<Offset>;
  /**
   * Where a batch (start, end] must read from when that is more than `start` says: a Kafka partition in `end`
   * but not in `start` (new since the last batch) starts at its earliest offset. The loop logs the answer in
   * offsets/N (`readFrom`) before reading, so a re-run reads from the same place. Undefined: from `start`.
   */
  readFrom?(start: Offset, end: Offset): Promise<Offset | undefined>;
  /**
   * The rows in (start, end], in chunks of at most about CHUNK_ROWS, in a fixed order: exactly the same
   * rows every time it is asked (re-runs depend on it). Chunks keep a batch's memory bounded whatever the
   * backlog: the loop processes each before the next is read.
   */
  getBatch(start: Offset, end: Offset): AsyncIterable<Row[]>;
  /** What diagnose() asks a source: whether what it reads exists, and how far its data goes now. */
  inspect?(): Promise<SourceInspection>;
  /** Called after batch end is committed; sources may release data before it. */
  commit?(end: Offset): Promise<void>;
  stop(): Promise<void>;
}

/** A source whose data is fed by the program (tests, lessons): `MemoryStream`. */
export interface SourceProvider {
  createSource(options: Record<string, string>, userSchema: StructType | undefined): Source | Promise<Source>;
}

/** A source's answer to diagnose() (Source.inspect). */
export interface SourceInspection {
  /** The startingOffsets option, when the user set it (it applies only to a query's first start). */
  startingOffsets?: string;
  /** Topics named by `subscribe` that do not exist. */
  missingTopics?: string[];
  /** `subscribePattern`, and the topics it matches now. */
  pattern?: string;
  matchedTopics?: string[];
  /** The offset a batch planned now would end at (without maxOffsetsPerTrigger), and the first offset still kept. */
  latest?: Offset;
  earliest?: Offset;
}
