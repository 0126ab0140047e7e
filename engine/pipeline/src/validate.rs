//! Topology validation: every problem of a declaration in one report, then the plan
//! the builder wires from.

use std::collections::HashMap;

use crate::frame::Domain;
use crate::stage::{Stage, StageHints};
use crate::topology::TopologyConfig;

/// One problem in a topology declaration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("the topology declares no stages")]
    Empty,
    #[error("name {name:?} is declared more than once")]
    DuplicateName { name: String },
    #[error("name {name:?} is invalid: use ascii letters, digits, '_' or '-'")]
    InvalidName { name: String },
    #[error("stage {stage:?} has no inputs")]
    NoInputs { stage: String },
    #[error("stage {stage:?} lists input {input:?} more than once")]
    DuplicateInput { stage: String, input: String },
    #[error("stage {stage:?} reads from unknown input {input:?}")]
    UnknownInput { stage: String, input: String },
    #[error("stage {stage:?} reads {input:?} but {producer:?} has no output named {port:?}")]
    UnknownOutput { stage: String, input: String, producer: String, port: String },
    #[error("output {port:?} of stage {stage:?} feeds nothing")]
    UnconnectedOutput { stage: String, port: String },
    #[error("source {name:?} feeds no stage")]
    UnusedSource { name: String },
    #[error("source {name:?} feeds {readers} stages; a source feeds exactly one (add a fan-out stage)")]
    SourceFanOut { name: String, readers: usize },
    #[error("stage {stage:?} has an input capacity of 0")]
    ZeroCapacity { stage: String },
    #[error("cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
}

impl ValidationError {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::DuplicateName { .. } => "duplicate_name",
            Self::InvalidName { .. } => "invalid_name",
            Self::NoInputs { .. } => "no_inputs",
            Self::DuplicateInput { .. } => "duplicate_input",
            Self::UnknownInput { .. } => "unknown_input",
            Self::UnknownOutput { .. } => "unknown_output",
            Self::UnconnectedOutput { .. } => "unconnected_output",
            Self::UnusedSource { .. } => "unused_source",
            Self::SourceFanOut { .. } => "source_fan_out",
            Self::ZeroCapacity { .. } => "zero_capacity",
            Self::Cycle { .. } => "cycle",
        }
    }
}

/// Every problem found, in declaration order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid topology: {}", join(.errors))]
pub struct ValidationErrors {
    pub errors: Vec<ValidationError>,
}

impl ValidationErrors {
    pub fn error_type(&self) -> &'static str {
        "invalid_topology"
    }
}

fn join(errors: &[ValidationError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What the builder needs, indexed like `config.stages`.
pub(crate) struct Plan {
    pub(crate) hints: Vec<StageHints>,
    pub(crate) capacities: Vec<usize>,
    /// `[stage][output] -> reader stages`, outputs in `hints.outputs` order.
    pub(crate) consumers: Vec<Vec<Vec<usize>>>,
    /// The one stage each source feeds, in `config.sources` order.
    pub(crate) source_targets: Vec<usize>,
    /// Producers before readers.
    pub(crate) order: Vec<usize>,
}

#[derive(Clone, Copy)]
enum Node {
    Source(usize),
    Stage(usize),
}

pub(crate) fn plan<D: Domain>(config: &TopologyConfig<D>) -> Result<Plan, ValidationErrors> {
    let mut errors = Vec::new();
    if config.stages.is_empty() {
        errors.push(ValidationError::Empty);
    }

    let mut nodes: HashMap<&str, Node> = HashMap::new();
    let declared = config
        .sources
        .iter()
        .enumerate()
        .map(|(index, name)| (name.as_str(), Node::Source(index)))
        .chain(config.stages.iter().enumerate().map(|(index, stage)| (stage.id.as_str(), Node::Stage(index))));
    for (name, node) in declared {
        if !is_valid_name(name) {
            errors.push(ValidationError::InvalidName { name: name.to_owned() });
        }
        if nodes.insert(name, node).is_some() {
            errors.push(ValidationError::DuplicateName { name: name.to_owned() });
        }
    }

    let hints: Vec<StageHints> = config.stages.iter().map(|stage| stage.stage.hints()).collect();
    let mut capacities = Vec::with_capacity(hints.len());
    let mut consumers: Vec<Vec<Vec<usize>>> = hints.iter().map(|h| vec![Vec::new(); h.outputs.len()]).collect();
    let mut source_readers: Vec<Vec<usize>> = vec![Vec::new(); config.sources.len()];

    for (reader, stage) in config.stages.iter().enumerate() {
        let capacity = stage.input_capacity.unwrap_or(hints[reader].input_capacity);
        if capacity == 0 {
            errors.push(ValidationError::ZeroCapacity { stage: stage.id.clone() });
        }
        capacities.push(capacity);
        if stage.inputs.is_empty() {
            errors.push(ValidationError::NoInputs { stage: stage.id.clone() });
        }
        for (position, input) in stage.inputs.iter().enumerate() {
            if stage.inputs[..position].contains(input) {
                errors.push(ValidationError::DuplicateInput { stage: stage.id.clone(), input: input.clone() });
                continue;
            }
            let (producer, port) = match input.split_once('.') {
                Some((producer, port)) => (producer, Some(port)),
                None => (input.as_str(), None),
            };
            let unknown_output = |port: &str| ValidationError::UnknownOutput {
                stage: stage.id.clone(),
                input: input.clone(),
                producer: producer.to_owned(),
                port: port.to_owned(),
            };
            match (nodes.get(producer), port) {
                (None, _) => {
                    errors.push(ValidationError::UnknownInput { stage: stage.id.clone(), input: input.clone() })
                }
                (Some(Node::Source(source)), None) => source_readers[*source].push(reader),
                (Some(Node::Source(_)), Some(port)) => errors.push(unknown_output(port)),
                (Some(Node::Stage(producer_index)), port) => {
                    let outputs = hints[*producer_index].outputs;
                    let wanted = port.or(outputs.first().copied());
                    match wanted.and_then(|name| outputs.iter().position(|known| *known == name)) {
                        Some(output) => consumers[*producer_index][output].push(reader),
                        None => errors.push(unknown_output(wanted.unwrap_or(crate::stage::DEFAULT_OUTPUT))),
                    }
                }
            }
        }
    }

    for (producer, ports) in consumers.iter().enumerate() {
        for (output, readers) in ports.iter().enumerate() {
            if readers.is_empty() {
                errors.push(ValidationError::UnconnectedOutput {
                    stage: config.stages[producer].id.clone(),
                    port: hints[producer].outputs[output].to_owned(),
                });
            }
        }
    }

    let mut source_targets = Vec::with_capacity(source_readers.len());
    for (name, readers) in config.sources.iter().zip(&source_readers) {
        match readers.as_slice() {
            [] => errors.push(ValidationError::UnusedSource { name: name.clone() }),
            [target] => source_targets.push(*target),
            _ => errors.push(ValidationError::SourceFanOut { name: name.clone(), readers: readers.len() }),
        }
    }

    let readers_of: Vec<Vec<usize>> = consumers.iter().map(|ports| ports.concat()).collect();
    for cycle in find_cycles(&readers_of) {
        errors.push(ValidationError::Cycle {
            path: cycle.iter().map(|&index| config.stages[index].id.clone()).collect(),
        });
    }

    if !errors.is_empty() {
        return Err(ValidationErrors { errors });
    }
    Ok(Plan { order: topological_order(&readers_of), hints, capacities, consumers, source_targets })
}

/// Names become metric labels, thread names and the `.`-separated input syntax.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One path per back edge found by a depth-first walk, e.g. `[a, b, a]`.
fn find_cycles(readers_of: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        node: usize,
        readers_of: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        marks[node] = Mark::OnPath;
        path.push(node);
        for &next in &readers_of[node] {
            match marks[next] {
                Mark::New => visit(next, readers_of, marks, path, cycles),
                Mark::OnPath => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    cycles.push(cycle);
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
    }

    let mut marks = vec![Mark::New; readers_of.len()];
    let mut cycles = Vec::new();
    for node in 0..readers_of.len() {
        if marks[node] == Mark::New {
            visit(node, readers_of, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

/// Kahn's algorithm; only called on an acyclic graph.
fn topological_order(readers_of: &[Vec<usize>]) -> Vec<usize> {
    let mut pending_inputs = vec![0usize; readers_of.len()];
    for readers in readers_of {
        for &reader in readers {
            pending_inputs[reader] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..readers_of.len()).filter(|&n| pending_inputs[n] == 0).rev().collect();
    let mut order = Vec::with_capacity(readers_of.len());
    while let Some(node) = ready.pop() {
        order.push(node);
        for &reader in &readers_of[node] {
            pending_inputs[reader] -= 1;
            if pending_inputs[reader] == 0 {
                ready.push(reader);
            }
        }
    }
    debug_assert_eq!(order.len(), readers_of.len(), "topological_order called on a cyclic graph");
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestStage;
    use crate::testing::{Frame, Outputs, Test, TopologyConfig};
    use crate::{Execution, StageHints};

    fn pass() -> TestStage {
        TestStage::Pass(Execution::Async)
    }

    fn sink() -> TestStage {
        TestStage::sink(flume::unbounded().0)
    }

    #[test]
    fn a_valid_declaration_passes() {
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("vad", pass()).input("mic");
        config.stage("stt", pass()).input("vad.out").capacity(1);
        config.stage("speaker", sink()).input("stt");
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.source("unused");
        config.stage("vad", pass()).input("mic");
        config.stage("vad", pass()).input("mic");
        config.stage("stt", pass()).input("ghost").input("vad.text").capacity(0);
        config.stage("loop_a", pass()).input("loop_b");
        config.stage("loop_b", pass()).input("loop_a").input("loop_a");
        config.stage("lonely", sink());
        config.stage("bad.name", sink()).input("mic.port").input("lonely");

        let errors = config.validate().unwrap_err().errors;
        let kinds: Vec<&str> = errors.iter().map(ValidationError::error_type).collect();
        assert_eq!(
            kinds,
            [
                "duplicate_name",     // vad twice
                "invalid_name",       // bad.name
                "zero_capacity",      // stt
                "unknown_input",      // stt <- ghost
                "unknown_output",     // stt <- vad.text
                "duplicate_input",    // loop_b <- loop_a twice
                "no_inputs",          // lonely
                "unknown_output",     // bad.name <- mic.port (sources have one output)
                "unknown_output",     // bad.name <- lonely, a sink
                "unconnected_output", // the first vad
                "unconnected_output", // the second vad
                "unconnected_output", // stt
                "source_fan_out",     // mic feeds both vads
                "unused_source",
                "cycle",
            ],
            "{errors:#?}"
        );
        assert!(
            errors.contains(&ValidationError::Cycle { path: vec!["loop_a".into(), "loop_b".into(), "loop_a".into()] })
        );
        let message = ValidationErrors { errors }.to_string();
        assert!(
            message
                .starts_with("invalid topology: name \"vad\" is declared more than once; name \"bad.name\" is invalid"),
            "{message}"
        );
        assert!(message.contains("cycle: loop_a -> loop_b -> loop_a"), "{message}");
    }

    #[test]
    fn named_outputs_are_addressed_by_stage_dot_port() {
        struct Router;
        impl crate::Stage<Test> for Router {
            fn name(&self) -> &'static str {
                "router"
            }
            fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), crate::StageError> {
                out.push_to("tts", frame)
            }
            fn hints(&self) -> StageHints {
                StageHints::asynchronous(4).with_outputs(&["command", "tts"])
            }
        }
        let mut config = TopologyConfig::new();
        config.source("text");
        config.stage("router", Router).input("text");
        config.stage("devices", sink()).input("router");
        let errors = config.validate().unwrap_err().errors;
        assert_eq!(errors, [ValidationError::UnconnectedOutput { stage: "router".into(), port: "tts".into() }]);
        config.stage("tts", sink()).input("router.tts");
        assert_eq!(config.validate(), Ok(()));
    }
}
