/**
 * What the user has been told, so that each thing (a key: the folder and the event's id) is told
 * once. Bounded: the oldest keys are forgotten past `max`, far more than one window sees between
 * two restarts.
 */
export class ToldOnce {
  private readonly told = new Set<string>();

  constructor(private readonly max = 1000) {}

  /** True the first time `key` comes (it is remembered from then on); false after that. */
  first(key: string): boolean {
    if (this.told.has(key)) return false;
    this.told.add(key);
    if (this.told.size > this.max) this.told.delete(this.told.values().next().value!);
    return true;
  }
}
