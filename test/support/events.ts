import type { Agent } from '../../agent/agent';
import type { AgentEvent } from '../../agent/protocol';

/** The agent's events of one type, oldest first. */
export function events<T extends AgentEvent['type']>(agent: Agent, type: T): Extract<AgentEvent, { type: T }>[] {
  return agent.store.events(0, 1_000_000).filter((e) => e.type === type) as unknown as Extract<AgentEvent, { type: T }>[];
}
