import Docker from 'dockerode';
import * as path from 'node:path';
import type { EnvironmentConfig, RuntimeName } from '../protocol';
import type { Store } from '../store/store';
import { ok, type IDisposable, type Result } from '../util/lifecycle';
import { DockerRuntime, dockerSettingsOf } from './docker';
import { KubernetesRuntime, kubernetesSettingsOf } from './kubernetes';
import { ProcessRuntime } from './process';
import { SwitchBoard } from './proxy';
import { SwarmRuntime } from './swarm';
import type { Runtime, RuntimeServices } from './runtime';

export interface RuntimesOptions {
  conveyorDir: string;
  store: Store;
  /** The settings of an environment as written (resources, ...), for runtime-specific options. */
  settingsOf(environment: string): Record<string, unknown>;
}

/**
 * The agent's runtimes, made on first use, and what they share: the switchboard that owns every
 * environment's public port (so blue-green switches traffic without a gap), port allocation, and
 * the folders where artifacts and runtime state live.
 */
export class Runtimes implements IDisposable {
  readonly switchboard = new SwitchBoard();
  private readonly made = new Map<RuntimeName, Runtime>();

  constructor(private readonly opts: RuntimesOptions) {}

  private services(name: RuntimeName): RuntimeServices {
    return {
      allocatePort: () => this.switchboard.allocatePort(),
      route: (environment, publicPort, upstream) => this.switchboard.route(environment, publicPort, upstream),
      artifactsDir: path.join(this.opts.conveyorDir, 'artifacts'),
      stateDir: path.join(this.opts.conveyorDir, 'runtimes', name),
    };
  }

  get(name: RuntimeName): Result<Runtime, string> {
    const existing = this.made.get(name);
    if (existing) return ok(existing);
    let runtime: Runtime;
    switch (name) {
      case 'process':
        runtime = new ProcessRuntime(this.services('process'), { traffic: this.switchboard, log: (m) => process.emitWarning(m) });
        break;
      case 'docker':
        runtime = new DockerRuntime(new Docker(), this.services('docker'), (env) => dockerSettingsOf(this.opts.settingsOf(env)));
        break;
      case 'swarm':
        runtime = new SwarmRuntime(new Docker(), this.services('swarm'), (env) => dockerSettingsOf(this.opts.settingsOf(env)));
        break;
      case 'kubernetes':
        // Relative paths in settings.kubernetes (kubeconfig, manifests) are the workspace's.
        runtime = new KubernetesRuntime((env) => kubernetesSettingsOf(this.opts.settingsOf(env), path.dirname(this.opts.conveyorDir)));
        break;
    }
    this.made.set(name, runtime);
    return ok(runtime);
  }

  /**
   * The environment's public port: the configured one, else one allocated the first time and kept
   * in the history, so the URL stays the same across deploys and restarts, with no two
   * environments on one port. An allocated port is held by the switchboard from then on
   * (SwitchBoard.hold), so nothing else takes it before a release is routed to it. Kubernetes
   * environments are reached through the cluster's Service: their port is not served here, so
   * it is not held.
   */
  async publicPort(env: EnvironmentConfig): Promise<number> {
    if (env.port) return env.port;
    const key = `port:${env.name}`;
    const served = env.runtime !== 'kubernetes';
    const kept = this.opts.store.getMeta(key);
    if (kept) {
      if (served) await this.switchboard.hold(env.name, Number(kept));
      return Number(kept);
    }
    const taken = new Set<number>();
    for (const row of this.opts.store.database.prepare("SELECT value FROM meta WHERE key LIKE 'port:%'").all() as { value: string }[]) {
      taken.add(Number(row.value));
    }
    let port: number;
    if (served) {
      port = await this.switchboard.hold(env.name, 0, taken);
    } else {
      port = await this.switchboard.allocatePort();
      while (taken.has(port)) port = await this.switchboard.allocatePort();
    }
    this.opts.store.setMeta(key, String(port));
    return port;
  }

  /** At agent start: takes over the instances of the process runtime that kept running. */
  async restore(): Promise<void> {
    const r = this.get('process');
    if (r.ok) await (r.value as ProcessRuntime).restore();
  }

  dispose(): void {
    for (const r of this.made.values()) r.dispose();
    this.made.clear();
    this.switchboard.dispose();
  }
}
