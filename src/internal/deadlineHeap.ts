/**
 * A binary min-heap of values by deadline. Entries are removed lazily: the owner skips the ones that no longer
 * matter when they surface, so removal from the middle is never needed.
 *
 * @internal
 */
export class DeadlineHeap<A> {
  private readonly keys: Array<number> = []
  private readonly values: Array<A> = []

  get size(): number {
    return this.keys.length
  }

  push(key: number, value: A): void {
    let i = this.keys.length
    this.keys.push(key)
    this.values.push(value)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.keys[parent] <= key) break
      this.swap(i, parent)
      i = parent
    }
  }

  peek(): A | undefined {
    return this.values[0]
  }

  pop(): A | undefined {
    const top = this.values[0]
    const lastKey = this.keys.pop()
    const lastValue = this.values.pop()
    if (this.keys.length > 0 && lastKey !== undefined && lastValue !== undefined) {
      this.keys[0] = lastKey
      this.values[0] = lastValue
      this.siftDown(0)
    }
    return top
  }

  private siftDown(i: number): void {
    const n = this.keys.length
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < n && this.keys[left] < this.keys[smallest]) smallest = left
      if (right < n && this.keys[right] < this.keys[smallest]) smallest = right
      if (smallest === i) return
      this.swap(i, smallest)
      i = smallest
    }
  }

  private swap(a: number, b: number): void {
    const key = this.keys[a]
    const value = this.values[a]
    this.keys[a] = this.keys[b]
    this.values[a] = this.values[b]
    this.keys[b] = key
    this.values[b] = value
  }
}
