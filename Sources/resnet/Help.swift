/// Width at which help text wraps, the classic terminal width.
private let helpLineWidth = 80

/// Synopses longer than this get their help text on the next line, so that one long option
/// does not push every description to the right.
private let maximumSynopsisColumn = 28

extension Program {
    /// The tool's help: usage line, description and the list of commands.
    var helpText: String {
        var lines = ["Usage: \(name) <command> [options]", ""]
        lines += wrap(words(of: description), width: helpLineWidth)
        lines += ["", "Commands:"]
        lines += formatEntries(commands.map { (term: $0.name, words: words(of: $0.summary)) })
        lines += ["", "Run '\(name) <command> --help' for a command's options, '\(name) --version' for the version."]
        return lines.joined(separator: "\n")
    }

    /// Formats the help of `command`: usage line, description and one aligned line per option.
    func helpText(for command: Command) -> String {
        var lines = ["Usage: \(name) \(command.name) [options]", ""]
        lines += wrap(words(of: command.description), width: helpLineWidth)
        lines += ["", "Options:"]

        var entries = command.options.map { option in
            var helpWords = words(of: option.help)
            if let defaultValue = option.defaultValue {
                helpWords.append("(default: \(defaultValue))")
            }
            return (term: option.synopsis, words: helpWords)
        }
        entries.append((term: "-h, --help", words: words(of: "show this help and exit")))
        lines += formatEntries(entries)
        return lines.joined(separator: "\n")
    }
}

/// Formats `term  text` lines with the texts aligned in one column and wrapped under it.
private func formatEntries(_ entries: [(term: String, words: [String])]) -> [String] {
    let indent = "  "
    let gap = 2
    let longestTerm = entries.map(\.term.count).filter { $0 <= maximumSynopsisColumn }.max() ?? 0
    let textColumn = indent.count + longestTerm + gap
    let padding = String(repeating: " ", count: textColumn)

    var lines: [String] = []
    for entry in entries {
        let textLines = wrap(entry.words, width: max(helpLineWidth - textColumn, 20))
        let head = indent + entry.term
        if entry.term.count > longestTerm {
            lines.append(head)
            lines += textLines.map { padding + $0 }
            continue
        }
        let headPadding = String(repeating: " ", count: textColumn - head.count)
        lines.append(head + headPadding + (textLines.first ?? ""))
        lines += textLines.dropFirst().map { padding + $0 }
    }
    return lines
}

private func words(of text: String) -> [String] {
    text.split(separator: " ").map(String.init)
}

/// Joins `words` with spaces into lines of at most `width` characters, except that a word
/// longer than `width` gets a line of its own. A word may contain spaces, which are never broken.
func wrap(_ words: [String], width: Int) -> [String] {
    var lines: [String] = []
    var line = ""
    for word in words {
        if line.isEmpty {
            line = word
        } else if line.count + 1 + word.count <= width {
            line += " " + word
        } else {
            lines.append(line)
            line = word
        }
    }
    if !line.isEmpty {
        lines.append(line)
    }
    return lines
}
