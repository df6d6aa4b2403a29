// Statistics for the benchmark scripts (no imports: unit-tested without a build).

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * A distribution-free confidence interval for the median (order statistics: the number of values
 * below the true median is Binomial(n, 1/2)); `null` when n is too small for the level.
 */
export function medianInterval(xs, level = 0.95) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  // P(X <= j) for X ~ Binomial(n, 1/2), accumulated until it passes the tail the level leaves.
  const tail = (1 - level) / 2;
  let p = 0.5 ** n;
  let cumulative = p;
  let k = 0; // values below the interval's low end
  while (cumulative <= tail) {
    k++;
    p = (p * (n - k + 1)) / k;
    cumulative += p;
  }
  return k === 0 ? null : [s[k - 1], s[n - k]];
}
