import Foundation
import ResNetMPI

/// A mistake in the command line, with a message that names the argument, the expected form
/// and the fix.
///
/// `message` has no "error: " prefix, which `description` adds.
struct UsageError: Error, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { "error: \(message)" }
}

/// Exit statuses of the `resnet` tool.
enum ExitCode {
    static let failure: Int32 = 1
    /// A malformed command line, the status that Python's argparse and the shell builtins use too.
    static let usage: Int32 = 2
}

/// Writes `error: <message>` to standard error and exits the process with `code`.
func exitWithError(_ message: String, code: Int32) -> Never {
    // In a distributed run, ranks other than 0 name themselves, and any rank's error ends the
    // whole run rather than leaving the others waiting in a sum.
    let rank = (DistributedRun.currentRank ?? DistributedRun.launchRank).map { $0 == 0 ? "" : "rank \($0): " } ?? ""
    FileHandle.standardError.write(Data("error: \(rank)\(message)\n".utf8))
    if MPIGroup.isInitialized {
        // mpiexec forwards each rank's output through a pipe, so an abort can end the run before
        // the line above gets through. Half a second is a margin for it to arrive, not a guarantee.
        usleep(500_000)
        MPIGroup.abortRun(code: code)
    }
    exit(code)
}

/// Writes the usage error to standard error and exits with `code`, which defaults to 2.
func exitWithError(_ error: UsageError, code: Int32 = ExitCode.usage) -> Never {
    exitWithError(error.message, code: code)
}

// MARK: - Declarations

/// An option that a command accepts: either `--name VALUE` (also written `--name=VALUE`) or a
/// flag `--name`, a boolean switch that takes no value.
struct Option {
    /// The name without the leading dashes, such as `batch-size`.
    var name: String
    /// The value's placeholder in the help, such as `N`, `RATE` or `HxWxC`, or nil for a flag.
    var placeholder: String?
    /// The help text: the setting that the option controls, with its unit.
    var help: String
    /// The value used when the option is absent, shown in the help, or nil for none.
    var defaultValue: String?
    /// The accepted values of a choice option, or nil when any value may be given.
    var choices: [String]?

    /// Declares an option that takes a value.
    init(_ name: String, placeholder: String, help: String, default defaultValue: String? = nil) {
        self.name = name
        self.placeholder = placeholder
        self.help = help
        self.defaultValue = defaultValue
    }

    /// Declares an option whose value must be one of `choices`, which the placeholder lists, as
    /// in `--backend onednn|reference`.
    init(_ name: String, choices: [String], help: String, default defaultValue: String? = nil) {
        precondition(!choices.isEmpty, "option --\(name) declares no choices")
        if let defaultValue {
            precondition(choices.contains(defaultValue), "default '\(defaultValue)' of --\(name) is not a choice")
        }
        self.name = name
        self.placeholder = choices.joined(separator: "|")
        self.help = help
        self.defaultValue = defaultValue
        self.choices = choices
    }

    /// Declares a flag: a boolean switch that is off unless given.
    init(flag name: String, help: String) {
        self.name = name
        self.help = help
    }

    var isFlag: Bool { placeholder == nil }

    /// The option as the help shows it, such as `--batch-size N`.
    var synopsis: String {
        guard let placeholder else { return "--\(name)" }
        return "--\(name) \(placeholder)"
    }
}

/// A subcommand of the tool, such as `resnet train`, with its options.
struct Command {
    /// The subcommand's name, such as `train`.
    var name: String
    /// One line for the tool's list of commands.
    var summary: String
    /// One paragraph for the command's help.
    var description: String
    var options: [Option]

    init(name: String, summary: String, description: String, options: [Option]) {
        let names = options.map(\.name)
        precondition(Set(names).count == names.count, "command \(name) declares an option twice")
        precondition(!names.contains("help"), "command \(name) declares --help, which every command has")
        self.name = name
        self.summary = summary
        self.description = description
        self.options = options
    }

    func option(named name: String) -> Option? {
        options.first { $0.name == name }
    }
}

/// The tool: its name, its version, its description and its subcommands.
struct Program {
    var name: String
    /// The line that `--version` prints after the name.
    var version: String
    var description: String
    var commands: [Command]

    /// The outcome of parsing a command line.
    enum Invocation {
        /// The user asked for help or the version, and the text is ready to print to standard
        /// output.
        case help(String)
        /// The user ran `command` with `arguments`.
        case run(Command, ParsedArguments)
    }

    /// Parses the arguments after the program name: a subcommand, then its options.
    ///
    /// `--help` or `-h` as the first argument returns the tool's help, and anywhere after a
    /// command name it returns that command's help, even when other options are invalid.
    func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        guard let first = arguments.first else {
            throw UsageError("missing command; expected one of \(commandList). Run '\(name) --help' for the commands.")
        }
        if isHelpRequest(first) {
            return .help(helpText)
        }
        if first == "--version" {
            return .help("\(name) \(version)")
        }
        if first.hasPrefix("-") {
            throw UsageError(
                "missing command before '\(first)'; expected one of \(commandList), as in '\(name) \(commands[0].name) \(first)'.")
        }
        if first == "help" {
            return try helpInvocation(for: Array(arguments.dropFirst()))
        }

        guard let command = commands.first(where: { $0.name == first }) else {
            throw unknownCommandError(first)
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains(where: isHelpRequest) {
            return .help(helpText(for: command))
        }
        return .run(command, try ParsedArguments(parsing: rest, for: command, program: name))
    }

    private func helpInvocation(for arguments: [String]) throws(UsageError) -> Invocation {
        guard let topic = arguments.first else { return .help(helpText) }
        guard arguments.count == 1 else {
            throw UsageError("unexpected argument '\(arguments[1])'; 'help' takes at most one command name.")
        }
        guard let command = commands.first(where: { $0.name == topic }) else {
            throw unknownCommandError(topic)
        }
        return .help(helpText(for: command))
    }

    private func unknownCommandError(_ word: String) -> UsageError {
        var message = "unknown command '\(word)'"
        if let suggestion = nearestName(to: word, among: commands.map(\.name)) {
            message += "; did you mean '\(suggestion)'?"
        } else {
            message += "; expected one of \(commandList)."
        }
        return UsageError(message + " Run '\(name) --help' for the commands.")
    }

    private var commandList: String {
        commands.map(\.name).joined(separator: ", ")
    }
}

private func isHelpRequest(_ argument: String) -> Bool {
    argument == "--help" || argument == "-h"
}

// MARK: - Parsing

/// The options given to a command, with typed getters that validate each value.
///
/// A getter returns the value from the command line, or else the declared default, and throws
/// `UsageError` when that value is invalid or when the option has neither. Asking for an option
/// the command does not declare is a programming error and stops the program.
struct ParsedArguments {
    let command: Command
    let program: String
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    /// Parses `arguments`, the words after the subcommand.
    ///
    /// A value option takes the next word as its value unless that word starts with `--`, so
    /// `--learning-rate -1` reaches validation while `--data --epochs 3` reports a missing value.
    init(parsing arguments: [String], for command: Command, program: String) throws(UsageError) {
        self.command = command
        self.program = program

        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1

            guard argument.hasPrefix("-"), argument.count > 1 else {
                throw UsageError(
                    "unexpected argument '\(argument)'; '\(program) \(command.name)' takes only options. \(helpHint)")
            }

            let (name, inlineValue) = Self.split(argument)
            guard argument.hasPrefix("--"), let option = command.option(named: name) else {
                throw unknownOptionError(argument, name: name)
            }

            if option.isFlag {
                if let inlineValue {
                    throw UsageError("option --\(name) is a flag and takes no value; remove '=\(inlineValue)'.")
                }
                guard !flags.contains(name) else {
                    throw UsageError("option --\(name) is given twice; give it once.")
                }
                flags.insert(name)
                continue
            }

            let value: String
            if let inlineValue {
                value = inlineValue
            } else if index < arguments.count, !arguments[index].hasPrefix("--") {
                value = arguments[index]
                index += 1
            } else {
                throw missingValueError(option)
            }
            guard !value.isEmpty else {
                throw missingValueError(option)
            }
            if let earlier = values[name] {
                throw UsageError(
                    "option --\(name) is given twice, as '\(earlier)' and '\(value)'; give it once.")
            }
            if let choices = option.choices {
                _ = try Self.validateChoice(value, option: option, choices: choices)
            }
            values[name] = value
        }
    }

    /// Splits `--name=value` into the name and the value, and `--name` into the name and nil.
    private static func split(_ argument: String) -> (name: String, value: String?) {
        let body = argument.drop { $0 == "-" }
        guard let equals = body.firstIndex(of: "=") else {
            return (String(body), nil)
        }
        return (String(body[..<equals]), String(body[body.index(after: equals)...]))
    }

    private var helpHint: String {
        "Run '\(program) \(command.name) --help' for the options."
    }

    private func unknownOptionError(_ argument: String, name: String) -> UsageError {
        let optionText = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
        var message = "unknown option '\(optionText)'"
        if command.options.contains(where: { $0.name == "no-" + name }) {
            message += "; \(name) is on by default, and --no-\(name) turns it off."
        } else if let suggestion = nearestName(to: name, among: command.options.map(\.name) + ["help"]) {
            message += "; did you mean '--\(suggestion)'?"
        } else {
            message += "."
        }
        return UsageError(message + " " + helpHint)
    }

    private func missingValueError(_ option: Option) -> UsageError {
        let placeholder = option.placeholder ?? "VALUE"
        return UsageError(
            "missing value for --\(option.name); expected \(placeholder), as in --\(option.name) \(placeholder) or --\(option.name)=\(placeholder).")
    }

    // MARK: Getters

    /// Returns whether the user gave the option, as opposed to it taking its default.
    func contains(_ name: String) -> Bool {
        let option = declaredOption(name)
        return option.isFlag ? flags.contains(name) : values[name] != nil
    }

    /// Returns whether the flag `--name` is given.
    func flag(_ name: String) -> Bool {
        let option = declaredOption(name)
        precondition(option.isFlag, "--\(name) takes a value; read it with a value getter")
        return flags.contains(name)
    }

    /// Returns the value of `--name` as given, or its default.
    func string(_ name: String) throws(UsageError) -> String {
        try value(of: declaredValueOption(name))
    }

    /// Returns the value of `--name` as an integer in `range`.
    func integer(_ name: String, in range: ClosedRange<Int>) throws(UsageError) -> Int {
        let option = declaredValueOption(name)
        let text = try value(of: option)
        guard let number = Int(text), range.contains(number) else {
            throw invalidValueError(text, option: option, expected: "an integer \(describe(range))")
        }
        return number
    }

    /// Returns the value of `--name` as a finite number within `bounds`, such as
    /// `.greaterThan(0)` for a learning rate.
    func double(_ name: String, in bounds: NumberBounds = .any) throws(UsageError) -> Double {
        let option = declaredValueOption(name)
        let text = try value(of: option)
        guard let number = Double(text) else {
            throw invalidValueError(text, option: option, expected: "a number \(bounds)")
        }
        guard number.isFinite else {
            let problem = number.isNaN ? "not a number" : "infinite"
            throw invalidValueError(
                text, option: option, expected: "a finite number \(bounds), but '\(text)' is \(problem)")
        }
        guard bounds.contains(number) else {
            throw invalidValueError(text, option: option, expected: "a number \(bounds)")
        }
        return number
    }

    /// Returns the value of `--name`, one of its declared choices.
    func choice(_ name: String) throws(UsageError) -> String {
        let option = declaredValueOption(name)
        guard let choices = option.choices else {
            preconditionFailure("--\(name) declares no choices; read it with string(_:)")
        }
        return try Self.validateChoice(try value(of: option), option: option, choices: choices)
    }

    /// Returns the value of `--name` as a case of `type`, whose raw values must include every
    /// declared choice.
    func choice<Choice: RawRepresentable>(_ name: String, as type: Choice.Type) throws(UsageError) -> Choice
    where Choice.RawValue == String {
        let text = try choice(name)
        guard let value = Choice(rawValue: text) else {
            preconditionFailure("choice '\(text)' of --\(name) is not a case of \(Choice.self)")
        }
        return value
    }

    /// Returns the value of `--name` as an image shape written `HxWxC`, such as `224x224x3`,
    /// with each size in `sizes`.
    ///
    /// The default range of 1 to 65536 rejects typos, not shapes too large for memory.
    func imageShape(_ name: String, sizes: ClosedRange<Int> = 1...65_536) throws(UsageError) -> ImageShape {
        let option = declaredValueOption(name)
        let text = try value(of: option)
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw invalidValueError(
                text, option: option, expected: "height, width and channels written HxWxC, such as 224x224x3")
        }

        var sizesFound: [Int] = []
        for (part, dimension) in zip(parts, ["height", "width", "channel count"]) {
            guard let size = Int(part), sizes.contains(size) else {
                let found = part.isEmpty ? "missing" : "'\(part)'"
                throw invalidValueError(
                    text, option: option,
                    expected: "HxWxC with each size an integer \(describe(sizes)), such as 224x224x3, but the \(dimension) is \(found)")
            }
            sizesFound.append(size)
        }
        return ImageShape(height: sizesFound[0], width: sizesFound[1], channels: sizesFound[2])
    }

    // MARK: Helpers

    private func value(of option: Option) throws(UsageError) -> String {
        if let given = values[option.name] {
            return given
        }
        if let defaultValue = option.defaultValue {
            return defaultValue
        }
        throw UsageError(
            "missing required option --\(option.name); pass it as --\(option.name) \(option.placeholder ?? "VALUE"). \(helpHint)")
    }

    private static func validateChoice(_ text: String, option: Option, choices: [String]) throws(UsageError) -> String {
        guard choices.contains(text) else {
            var message = "invalid value '\(text)' for --\(option.name): expected one of \(choices.joined(separator: ", "))"
            if let suggestion = nearestName(to: text, among: choices) {
                message += "; did you mean '\(suggestion)'?"
            }
            throw UsageError(message)
        }
        return text
    }

    private func invalidValueError(_ text: String, option: Option, expected: String) -> UsageError {
        guard values[option.name] != nil else {
            preconditionFailure("the default '\(text)' of --\(option.name) is invalid: expected \(expected)")
        }
        return UsageError("invalid value '\(text)' for --\(option.name): expected \(expected)")
    }

    private func declaredOption(_ name: String) -> Option {
        guard let option = command.option(named: name) else {
            preconditionFailure("command \(command.name) declares no option --\(name)")
        }
        return option
    }

    private func declaredValueOption(_ name: String) -> Option {
        let option = declaredOption(name)
        precondition(!option.isFlag, "--\(name) is a flag; read it with flag(_:)")
        return option
    }
}

private func describe(_ range: ClosedRange<Int>) -> String {
    if range.upperBound == Int.max {
        return "of at least \(range.lowerBound)"
    }
    return "from \(range.lowerBound) to \(range.upperBound)"
}
