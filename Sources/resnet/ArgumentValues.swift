/// The height, width and channel count of an input image.
struct ImageShape: Hashable, Sendable, CustomStringConvertible {
    var height: Int
    var width: Int
    var channels: Int

    /// The shape written `HxWxC`, as the command line takes it.
    var description: String { "\(height)x\(width)x\(channels)" }
}

/// Lower and upper limits on a number, each inclusive or exclusive.
struct NumberBounds: Sendable, CustomStringConvertible {
    enum Limit: Sendable {
        case inclusive(Double)
        case exclusive(Double)
    }

    var lower: Limit?
    var upper: Limit?

    static let any = NumberBounds()
    static func greaterThan(_ value: Double) -> NumberBounds { NumberBounds(lower: .exclusive(value)) }
    static func atLeast(_ value: Double) -> NumberBounds { NumberBounds(lower: .inclusive(value)) }
    static func from(_ lower: Double, to upper: Double) -> NumberBounds {
        NumberBounds(lower: .inclusive(lower), upper: .inclusive(upper))
    }

    func contains(_ value: Double) -> Bool {
        switch lower {
        case .inclusive(let limit)? where value < limit: return false
        case .exclusive(let limit)? where value <= limit: return false
        default: break
        }
        switch upper {
        case .inclusive(let limit)? where value > limit: return false
        case .exclusive(let limit)? where value >= limit: return false
        default: return true
        }
    }

    /// The bounds in words, such as "greater than 0" or "from 0 to 1", to follow "a number".
    var description: String {
        switch (lower, upper) {
        case (nil, nil):
            return "such as 0.1 or 1e-3"
        case (.inclusive(let low)?, .inclusive(let high)?):
            return "from \(format(low)) to \(format(high))"
        case (let low?, nil):
            return describe(low, isLower: true, isAlone: true)
        case (nil, let high?):
            return describe(high, isLower: false, isAlone: true)
        case (let low?, let high?):
            return "\(describe(low, isLower: true, isAlone: false)) and \(describe(high, isLower: false, isAlone: false))"
        }
    }

    /// Describes one limit. Alone, an inclusive limit reads "of at least 1", and in a pair "at least 1".
    private func describe(_ limit: Limit, isLower: Bool, isAlone: Bool) -> String {
        let preposition = isAlone ? "of " : ""
        switch (limit, isLower) {
        case (.inclusive(let value), true): return "\(preposition)at least \(format(value))"
        case (.exclusive(let value), true): return "greater than \(format(value))"
        case (.inclusive(let value), false): return "\(preposition)at most \(format(value))"
        case (.exclusive(let value), false): return "less than \(format(value))"
        }
    }

    private func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
