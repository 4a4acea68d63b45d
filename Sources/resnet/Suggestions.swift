/// Returns the candidate closest to `word` by edit distance, or nil when none is close enough
/// to be a likely typo: at most 2 edits, and fewer than half the length of the longer word.
func nearestName(to word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { (name: $0, distance: editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.distance < $1.distance }) else { return nil }
    let isClose = best.distance <= 2 && best.distance * 2 < max(word.count, best.name.count)
    return isClose ? best.name : nil
}

/// Returns the edit distance between `source` and `target`: the fewest single-character
/// insertions, deletions, substitutions and swaps of adjacent characters that turn one into the
/// other (the optimal string alignment distance), so that the typo `--hepl` is one edit from `--help`.
func editDistance(_ source: String, _ target: String) -> Int {
    let source = Array(source)
    let target = Array(target)
    guard !source.isEmpty else { return target.count }
    guard !target.isEmpty else { return source.count }

    // Row i contains the distances from the first i characters of `source` to each prefix of `target`.
    var rowBeforePrevious = [Int](repeating: 0, count: target.count + 1)
    var previousRow = Array(0...target.count)
    var currentRow = [Int](repeating: 0, count: target.count + 1)
    for i in 1...source.count {
        currentRow[0] = i
        for j in 1...target.count {
            let substitution = previousRow[j - 1] + (source[i - 1] == target[j - 1] ? 0 : 1)
            currentRow[j] = min(previousRow[j] + 1, currentRow[j - 1] + 1, substitution)
            if i > 1, j > 1, source[i - 1] == target[j - 2], source[i - 2] == target[j - 1] {
                currentRow[j] = min(currentRow[j], rowBeforePrevious[j - 2] + 1)
            }
        }
        (rowBeforePrevious, previousRow, currentRow) = (previousRow, currentRow, rowBeforePrevious)
    }
    return previousRow[target.count]
}
