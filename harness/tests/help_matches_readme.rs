//! The README's command-line section and `--help` agree, option by
//! option: every option the binary takes is in the README's usage block
//! of its command, and the README names no option the binary lacks.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

/// The usage block of the README's "The command line" section: command
/// name -> the `--options` its lines mention.
fn readme_usage() -> BTreeMap<String, BTreeSet<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let section = readme.split("\n## The command line").nth(1).expect("a '## The command line' section");
    let block = section.split("```text\n").nth(1).unwrap().split("```").next().unwrap();
    let mut usage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix("wirebench ") {
            let first = rest.split_whitespace().next().unwrap_or("");
            current = if first.starts_with('[') || first.starts_with('-') { "run".into() } else { first.into() };
        }
        let options = usage.entry(current.clone()).or_default();
        for word in line.split(|c: char| c.is_whitespace() || "[]|".contains(c)) {
            if let Some(name) = word.strip_prefix("--") {
                let name: String = name.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                if !name.is_empty() {
                    options.insert(name);
                }
            }
        }
    }
    usage
}

/// Each visible command's long options, from the definition.
fn help_usage() -> BTreeMap<String, BTreeSet<String>> {
    let cli = wirebench::cli::command();
    let mut usage = BTreeMap::new();
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let options: BTreeSet<String> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .filter(|l| !matches!(*l, "help" | "version"))
            .map(String::from)
            .collect();
        usage.insert(sub.get_name().to_owned(), options);
    }
    usage
}

#[test]
fn every_command_and_option_is_in_the_readme_and_nothing_else() {
    let readme = readme_usage();
    let help = help_usage();
    let commands = |m: &BTreeMap<String, BTreeSet<String>>| m.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(commands(&readme), commands(&help), "commands in the README vs --help");
    for (command, options) in &help {
        let documented = &readme[command];
        let missing: Vec<_> = options.difference(documented).collect();
        let extra: Vec<_> = documented.difference(options).collect();
        assert!(missing.is_empty(), "wirebench {command}: not in the README: {missing:?}");
        assert!(extra.is_empty(), "wirebench {command}: in the README but not in --help: {extra:?}");
    }
}

#[test]
fn the_bare_command_takes_exactly_the_options_of_run() {
    let cli = wirebench::cli::command();
    let top: BTreeSet<&str> = cli.get_arguments().filter(|a| !a.is_hide_set()).filter_map(|a| a.get_long()).collect();
    let run = cli.get_subcommands().find(|s| s.get_name() == "run").unwrap();
    let run: BTreeSet<&str> = run.get_arguments().filter(|a| !a.is_hide_set()).filter_map(|a| a.get_long()).collect();
    let top: BTreeSet<&str> = top.into_iter().filter(|l| !matches!(*l, "help" | "version")).collect();
    let run: BTreeSet<&str> = run.into_iter().filter(|l| !matches!(*l, "help" | "version")).collect();
    assert_eq!(top, run);
}
