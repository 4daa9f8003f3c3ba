/**
 * Where the watermark is computed (Spark's WatermarkTracker): after each batch, per withWatermark node,
 * max event time seen − delay, never going back; the global watermark is their minimum (or maximum with
 * `multipleWatermarkPolicy=max`), never below the current one. Computed at the end of batch N, logged as
 * `nextBatchWatermarkMs` in commits/N, used by batch N+1 (a watermark never affects the batch whose data
 * moved it). Each node's own watermark is logged in commits/N too when there are several, so a restart
 * continues exactly.
 */
import type { Analyzed, WatermarkStage } from '../plan/analyzer.js';
import { allStages } from '../plan/analyzer.js';
import type { EventTimeStats } from './planRunner.js';

export class WatermarkTracker {
  private readonly nodes: WatermarkStage[];
  /** Each withWatermark node's own watermark, by its id. */
  private readonly perNode = new Map<number, number>();

  constructor(
    plan: Analyzed,
    private readonly policy: 'min' | 'max',
  ) {
    this.nodes = allStages(plan).filter((st): st is WatermarkStage => st.kind === 'watermark');
  }

  /** Whether the plan has any withWatermark. */
  get watermarked(): boolean {
    return this.nodes.length > 0;
  }

  /** Each withWatermark's delay (diagnose(): the event time that moves the watermark past a window). */
  delaysMs(): number[] {
    return this.nodes.map((n) => n.delayMs);
  }

  /** Restores the per-node watermarks logged in a commit (`operatorWatermarksMs`). */
  restore(logged: Record<string, number> | undefined): void {
    for (const [id, ms] of Object.entries(logged ?? {})) this.perNode.set(Number(id), ms);
  }

  /** What commits/N logs besides the global watermark: per-node watermarks, when there are several nodes. */
  logged(): Record<string, number> | undefined {
    return this.nodes.length > 1 && this.perNode.size ? Object.fromEntries(this.perNode) : undefined;
  }

  /** The watermark for the next batch, from this batch's event-time statistics and the current watermark. */
  next(current: number, stats: Map<number, EventTimeStats>): number {
    for (const st of this.nodes) {
      const s = stats.get(st.id);
      if (!s || s.count === 0) continue;
      this.perNode.set(st.id, Math.max(this.perNode.get(st.id) ?? -Infinity, s.max - st.delayMs));
    }
    if (this.perNode.size === 0) return current;
    // An input that has sent nothing yet counts as 0 (Spark's WatermarkTracker: "Populate 0 if we haven't
    // seen any data yet"): with the min policy it holds the watermark until every input has spoken, so its
    // first rows cannot arrive already late.
    const values = this.nodes.map((st) => this.perNode.get(st.id) ?? 0);
    const global = this.policy === 'max' ? Math.max(...values) : Math.min(...values);
    return Math.max(current, global);
  }
}
