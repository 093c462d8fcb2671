/**
 * A doubly linked list whose items carry their own links: adding and removing cost no allocation and no
 * hashing, which matters on the path of every call (the scheduler's waiting callers, the tracker's open
 * reservations). An item is in at most one such list at a time.
 *
 * @internal
 */

/** What an item of a `LinkedList` carries. */
export interface Linked<T> {
  prev: T | undefined
  next: T | undefined
}

export class LinkedList<T extends Linked<T>> {
  head: T | undefined = undefined
  tail: T | undefined = undefined
  size = 0

  push(item: T): void {
    item.prev = this.tail
    item.next = undefined
    if (this.tail === undefined) this.head = item
    else this.tail.next = item
    this.tail = item
    this.size++
  }

  remove(item: T): void {
    if (item.prev === undefined) this.head = item.next
    else item.prev.next = item.next
    if (item.next === undefined) this.tail = item.prev
    else item.next.prev = item.prev
    item.prev = item.next = undefined
    this.size--
  }
}
