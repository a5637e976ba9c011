// A Map that keeps at most `limit` entries, dropping the least recently set first: per-user records in the mesh
// are keyed by identities a hostile party can mint at will (one request makes a guest), so they must not grow
// without end.
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    // Setting again makes the entry the newest, so what is in use stays and what is forgotten goes.
    super.delete(key);
    super.set(key, value);
    for (const oldest of this.keys()) {
      if (this.size <= this.limit) break;
      super.delete(oldest);
    }
    return this;
  }
}
