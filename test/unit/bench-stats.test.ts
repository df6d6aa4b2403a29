import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module of the benchmark scripts, without types
import { median, medianInterval } from '../../scripts/stats.mjs';

describe('bench statistics', () => {
  it('median: the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  // The order statistics of the textbook table (e.g. Conover): n=6 -> 1st..6th (96.9 %),
  // n=24 -> 7th..18th, n=32 -> 10th..23rd.
  it('medianInterval: the order statistics that hold the median with at least 95 %', () => {
    const oneTo = (n: number) => Array.from({ length: n }, (_, i) => n - i); // unsorted on purpose
    expect(medianInterval(oneTo(5))).toBeNull();
    expect(medianInterval(oneTo(6))).toEqual([1, 6]);
    expect(medianInterval(oneTo(8))).toEqual([1, 8]);
    expect(medianInterval(oneTo(16))).toEqual([4, 13]);
    expect(medianInterval(oneTo(24))).toEqual([7, 18]);
    expect(medianInterval(oneTo(32))).toEqual([10, 23]);
    expect(medianInterval(oneTo(24), 0.99)).toEqual([6, 19]); // P(X <= 5) = 0.0033 <= 0.005 < P(X <= 6)
  });
});
