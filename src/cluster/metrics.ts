/**
 * Prometheus metrics for a coordinator: every state transition (counted and timed), the machines in each state,
 * invariant violations, coherence, tasks and tokens. Its own prom-client Registry (no default process metrics:
 * they trip promtool's lint), so several coordinators in one test process do not collide.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MACHINE_KINDS, type ClusterView, type InvariantMonitor, type MachineRegistry } from '../state/index.js';

export class ClusterMetrics {
  readonly registry = new Registry();
  readonly tokens: Counter;
  readonly tasks: Counter<'reason'>;

  constructor(machines: MachineRegistry, invariants: InvariantMonitor<ClusterView>, heartbeatIntervalMs: number) {
    const r = this.registry;
    const transitions = new Counter({
      name: 'butterfly_state_transitions_total', help: 'State machine transitions.', labelNames: ['kind', 'from', 'to', 'trigger'], registers: [r],
    });
    const duration = new Histogram({
      name: 'butterfly_state_transition_duration_seconds', help: 'Time to validate and apply a transition.', labelNames: ['kind'],
      buckets: [0.5e-6, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 1e-3], registers: [r],
    });
    machines.onTransition((e) => {
      transitions.inc({ kind: e.kind, from: e.from, to: e.to, trigger: e.triggerKind });
      duration.observe({ kind: e.kind }, e.durationUs / 1e6);
    });
    new Gauge({
      name: 'butterfly_machines', help: 'Live state machines by kind and current state.', labelNames: ['kind', 'state'], registers: [r],
      collect() {
        this.reset();
        for (const kind of MACHINE_KINDS) for (const m of machines.list(kind)) this.inc({ kind, state: m.state });
      },
    });
    const violations = new Counter({
      name: 'butterfly_invariant_violations_total', help: 'Invariant violations found.', labelNames: ['invariant', 'severity'], registers: [r],
    });
    invariants.onViolation((v) => violations.inc({ invariant: v.invariant, severity: v.severity }), 'Info');
    new Gauge({
      name: 'butterfly_coherence_vertical_percent', help: 'Share of components whose state is allowed under the system state.', registers: [r],
      collect() {
        this.set(machines.coherence(heartbeatIntervalMs).vertical?.scorePct ?? 100);
      },
    });
    new Gauge({
      name: 'butterfly_coherence_horizontal_max_phase_lag', help: 'Largest phase lag among same-epoch workers.', registers: [r],
      collect() {
        this.set(machines.coherence(heartbeatIntervalMs).horizontal.maxLag);
      },
    });
    this.tokens = new Counter({ name: 'butterfly_tokens_generated_total', help: 'Tokens generated for clients.', registers: [r] });
    this.tasks = new Counter({ name: 'butterfly_tasks_finished_total', help: 'Tasks finished, by reason.', labelNames: ['reason'], registers: [r] });
  }

  contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
