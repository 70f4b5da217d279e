//! Least privilege, checked (issue 14, item 17): every Lambda function's IAM policy in
//! `template.yaml` allows exactly the AWS actions its code can call. A missing action is a
//! function that fails at run time; an extra one is privilege nothing needs.
//!
//! How the actions a function can call are found, statically, with `syn`:
//!
//! 1. The function's binary (`Metadata.BuildProperties.Binary`) is found in the crates'
//!    `Cargo.toml` (`[[bin]]`), and its `main` is the root of a call graph over the workspace's
//!    own code: the binary, its crate's library, the crates it depends on and `shared`.
//! 2. An edge is any path that names one of our functions (a call, or a function passed as a
//!    value: handlers, `service_fn`, middleware), a method call, and a struct literal (which
//!    makes the type's `Drop` reachable). Paths are resolved through modules and `use`
//!    declarations. Method calls on `self` resolve to the impl's own type. Calls on a port
//!    (`Store`, `Connections`, `Archive`, `ArchiveWriter`, `Mailer`, `Vault`: trait objects, so
//!    nothing says which impl runs) are recognised by the receiver's declared type (a field,
//!    parameter or `let` of type `DynStore`, `&dyn Store`, `Box<dyn ArchiveWriter>` ...) and
//!    resolved by method name against the impls of that port whose type the binary constructs
//!    (`DynamoStore`, `S3Archive`, `S3Writer`, `Ses`, `KmsVault`), so a function that builds no S3
//!    archive is not charged for one. Any other method call resolves by name to the methods of
//!    our own non-adapter types in scope (an over-approximation: it can only add code, never lose
//!    any).
//! 3. Handlers registered with `routes!` are reached only when the router is served: a router
//!    turned into its OpenAPI document (`routes().into_openapi()`, how each function crate's
//!    `openapi()` describes its routes) runs no handler. A block that runs only when a `bool` field
//!    is true (`if s.run_jobs_here { .. }`, a match arm guarded by it, or what follows
//!    `if !self.run_jobs_here { return; }`) counts only if reached code may set that field to
//!    something other than the literal `false`: a Lambda's state says `run_jobs_here: false`
//!    (its jobs run in their own function), the local server's says `true`.
//! 4. In the adapters' code, a method called on an AWS SDK client (a value of type `Client` in a
//!    file that uses one `aws_sdk_*` crate) is an operation, mapped to IAM actions by
//!    `SDK_ACTIONS`; an operation missing from that table fails the test. `TransactWriteItems`
//!    needs the actions of its items: the `Step` variants (or whatever enum the transaction
//!    helper matches on) that reachable code constructs, each mapped through the builder
//!    (`Put::builder`, `Update::builder`, ...) its match arm uses.
//!
//! What this cannot see: a port reached through a receiver whose type is not written down (a
//! closure parameter, a value returned by an unknown function), SDK calls outside the adapters'
//! `client` values, and calls made only through macros it cannot read (it reads macro arguments
//! that parse as expressions, and scans the rest for `x.method(` and `path::to::f(`). Policies
//! must be inline statements; wildcard actions are refused. Resources and conditions
//! (`dynamodb:LeadingKeys`, S3 prefixes, the SES identity, the KMS key) are narrowed by hand in
//! the template.
//!
//! A second test checks the HTTP API: the routes each function's router serves (its handlers'
//! `#[utoipa::path]`) are exactly the `HttpApi` events that route to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml::Value;
use syn::visit::{self, Visit};

// ---------------------------------------------------------------------------------------------
// What each AWS SDK operation needs
// ---------------------------------------------------------------------------------------------

/// `(SDK crate, client method, IAM action)`. The IAM action of an operation is usually its
/// name, but not always (`ListObjectsV2` is `s3:ListBucket`; multipart uploads and presigned
/// links need the action of the object they make or read). `transact_write_items` is handled
/// apart: its actions are those of the items it writes.
#[rustfmt::skip]
const SDK_ACTIONS: &[(&str, &str, &str)] = &[
    ("aws_sdk_dynamodb", "get_item",                  "dynamodb:GetItem"),
    ("aws_sdk_dynamodb", "put_item",                  "dynamodb:PutItem"),
    ("aws_sdk_dynamodb", "update_item",               "dynamodb:UpdateItem"),
    ("aws_sdk_dynamodb", "delete_item",               "dynamodb:DeleteItem"),
    ("aws_sdk_dynamodb", "query",                     "dynamodb:Query"),
    ("aws_sdk_dynamodb", "scan",                      "dynamodb:Scan"),
    ("aws_sdk_dynamodb", "batch_get_item",            "dynamodb:BatchGetItem"),
    // BatchWriteItem is authorised as itself, whatever its requests are.
    ("aws_sdk_dynamodb", "batch_write_item",          "dynamodb:BatchWriteItem"),
    ("aws_sdk_dynamodb", "transact_get_items",        "dynamodb:GetItem"),
    ("aws_sdk_dynamodb", "describe_table",            "dynamodb:DescribeTable"),
    ("aws_sdk_dynamodb", "create_table",              "dynamodb:CreateTable"),
    ("aws_sdk_dynamodb", "update_time_to_live",       "dynamodb:UpdateTimeToLive"),
    // Also a presigned link: S3 checks the signer's permission when the link is used.
    ("aws_sdk_s3",       "get_object",                "s3:GetObject"),
    ("aws_sdk_s3",       "head_object",               "s3:GetObject"),
    ("aws_sdk_s3",       "put_object",                "s3:PutObject"),
    ("aws_sdk_s3",       "create_multipart_upload",   "s3:PutObject"),
    ("aws_sdk_s3",       "upload_part",               "s3:PutObject"),
    ("aws_sdk_s3",       "complete_multipart_upload", "s3:PutObject"),
    ("aws_sdk_s3",       "abort_multipart_upload",    "s3:AbortMultipartUpload"),
    ("aws_sdk_s3",       "list_objects_v2",           "s3:ListBucket"),
    ("aws_sdk_s3",       "delete_object",             "s3:DeleteObject"),
    ("aws_sdk_s3",       "delete_objects",            "s3:DeleteObject"),
    ("aws_sdk_s3",       "put_object_tagging",        "s3:PutObjectTagging"),
    ("aws_sdk_s3",       "get_object_tagging",        "s3:GetObjectTagging"),
    ("aws_sdk_s3",       "create_bucket",             "s3:CreateBucket"),
    ("aws_sdk_sesv2",    "send_email",                "ses:SendEmail"),
    // The vault (`KmsVault`): sealing and opening provider admin keys.
    ("aws_sdk_kms",      "encrypt",                   "kms:Encrypt"),
    ("aws_sdk_kms",      "decrypt",                   "kms:Decrypt"),
];

/// `(SDK crate, operation, builder method, extra action)`: a request option that needs a
/// permission of its own. Tags sent with an upload (`x-amz-tagging`) need `s3:PutObjectTagging`.
#[rustfmt::skip]
const SDK_OPTION_ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("aws_sdk_s3", "put_object",              "tagging",     "s3:PutObjectTagging"),
    ("aws_sdk_s3", "put_object",              "set_tagging", "s3:PutObjectTagging"),
    ("aws_sdk_s3", "create_multipart_upload", "tagging",     "s3:PutObjectTagging"),
    ("aws_sdk_s3", "create_multipart_upload", "set_tagging", "s3:PutObjectTagging"),
];

/// Client methods that send no request.
const NOT_OPERATIONS: &[&str] = &["clone", "config"];

/// The item builders of a `TransactWriteItems` request and the action each item needs.
const TRANSACT_ITEMS: &[(&str, &str)] = &[
    ("Put", "dynamodb:PutItem"),
    ("Update", "dynamodb:UpdateItem"),
    ("Delete", "dynamodb:DeleteItem"),
    ("ConditionCheck", "dynamodb:ConditionCheckItem"),
];

/// Where the ports are declared: the traits of this folder's files are the ports, and a call
/// through one is resolved against the impls of the adapters the binary constructs.
const PORTS_DIR: &str = "shared/src/ports/";

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn each_function_policy_allows_exactly_the_aws_calls_its_code_makes() {
    let started = std::time::Instant::now();
    let root = repo_root();
    let code = code(&root);
    let functions = template_functions(&root);
    assert!(
        !functions.is_empty(),
        "no AWS::Serverless::Function in template.yaml"
    );

    let mut report = String::new();
    let mut summary = String::new();
    for f in &functions {
        let reach = code.reach(&f.binary);
        let needed: BTreeSet<String> = reach.actions.keys().cloned().collect();
        let (allowed, too_broad) = match &f.policy {
            Ok(p) => (p.actions.clone(), &p.too_broad),
            Err(e) => {
                writeln!(report, "{} ({}): {e}", f.logical_id, f.binary).unwrap();
                continue;
            }
        };
        writeln!(
            summary,
            "  {:<29} {:<22} {}",
            f.logical_id,
            f.binary,
            needed.iter().cloned().collect::<Vec<_>>().join(" ")
        )
        .unwrap();
        if needed == allowed && too_broad.is_empty() {
            continue;
        }
        writeln!(report, "\n{} (binary `{}`):", f.logical_id, f.binary).unwrap();
        for broad in too_broad {
            writeln!(report, "  too broad: {broad}").unwrap();
        }
        for action in needed.difference(&allowed) {
            writeln!(
                report,
                "  missing {action}: the function would fail when it calls it, through\n      {}",
                reach.actions[action]
            )
            .unwrap();
        }
        for action in allowed.difference(&needed) {
            writeln!(report, "  extra   {action}: nothing in its code calls it").unwrap();
        }
    }
    for e in &code.errors {
        writeln!(report, "checker: {e}").unwrap();
    }
    let elapsed = started.elapsed();
    assert!(
        report.is_empty(),
        "template.yaml's IAM policies do not match the code (issue 14, item 17):\n{report}\n\
         Fix the policy (or the code). The actions each function's code calls \
         (found in {elapsed:.1?}):\n{summary}"
    );
}

#[test]
fn http_routes_match_the_routers() {
    let root = repo_root();
    let code = code(&root);
    let functions = template_functions(&root);
    let mut report = String::new();
    let mut served_by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in &functions {
        let reach = code.reach(&f.binary);
        for r in &reach.routes {
            served_by
                .entry(r.clone())
                .or_default()
                .push(f.logical_id.clone());
        }
        for (method, path) in reach.routes.difference(&f.routes) {
            writeln!(
                report,
                "{}: its router serves {method} {path}, but the template does not route it there",
                f.logical_id
            )
            .unwrap();
        }
        for (method, path) in f.routes.difference(&reach.routes) {
            writeln!(
                report,
                "{}: the template routes {method} {path} to it, but its router does not serve it",
                f.logical_id
            )
            .unwrap();
        }
    }
    for ((method, path), by) in &served_by {
        if by.len() > 1 {
            writeln!(
                report,
                "{method} {path} is served by several functions: {by:?}"
            )
            .unwrap();
        }
    }
    assert!(
        report.is_empty(),
        "HTTP API routes do not match the routers:\n{report}"
    );
}

/// The workspace's code, read once for both tests.
fn code(root: &Path) -> &'static Code {
    static CODE: std::sync::OnceLock<Code> = std::sync::OnceLock::new();
    CODE.get_or_init(|| Code::load(root))
}

/// The repository: the parent of this crate (`infra/`).
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("template.yaml").is_file(),
        "template.yaml not found in {}",
        root.display()
    );
    root
}

// ---------------------------------------------------------------------------------------------
// The template
// ---------------------------------------------------------------------------------------------

struct Function {
    logical_id: String,
    binary: String,
    /// The actions its policy allows, or why they cannot be read.
    policy: Result<Policy, String>,
    /// `(METHOD, path)` of its `HttpApi` events.
    routes: BTreeSet<(String, String)>,
}

fn template_functions(root: &Path) -> Vec<Function> {
    let text = fs::read_to_string(root.join("template.yaml")).expect("reading template.yaml");
    // CloudFormation's short forms (`!Ref`, `!Sub`, `!GetAtt`) parse as tagged values.
    let doc: Value = serde_yaml::from_str(&text).expect("template.yaml is not YAML");
    let mut out = Vec::new();
    let Some(resources) = doc.get("Resources").and_then(Value::as_mapping) else {
        return out;
    };
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let logical_id = id.as_str().unwrap_or_default().to_owned();
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{logical_id} has no Metadata.BuildProperties.Binary"))
            .to_owned();
        let props = resource.get("Properties");
        let policy = read_policy(props.and_then(|p| p.get("Policies")));
        let mut routes = BTreeSet::new();
        if let Some(events) = props
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        {
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let p = event.get("Properties");
                let field = |name: &str| {
                    p.and_then(|p| p.get(name))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                routes.insert((field("Method").to_ascii_uppercase(), field("Path")));
            }
        }
        out.push(Function {
            logical_id,
            binary,
            policy,
            routes,
        });
    }
    out
}

/// What a function's `Policies` allow (inline statements only, so that they can be read).
#[derive(Default)]
struct Policy {
    actions: BTreeSet<String>,
    /// Statements broader than this template allows itself (see `too_broad`).
    too_broad: Vec<String>,
}

fn read_policy(policies: Option<&Value>) -> Result<Policy, String> {
    let mut out = Policy::default();
    let Some(policies) = policies else {
        return Ok(out);
    };
    let list = match policies {
        Value::Sequence(list) => list.clone(),
        other => vec![other.clone()],
    };
    for policy in &list {
        let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) else {
            return Err(format!(
                "a policy that is not an inline statement list cannot be checked: {policy:?}"
            ));
        };
        for statement in statements {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            let actions: Vec<String> = match statement.get("Action") {
                Some(Value::String(a)) => vec![a.clone()],
                Some(Value::Sequence(list)) => list
                    .iter()
                    .map(|a| a.as_str().map(str::to_owned).ok_or(format!("action {a:?}")))
                    .collect::<Result<_, _>>()?,
                other => return Err(format!("a statement without actions: {other:?}")),
            };
            for action in &actions {
                if action.contains('*') {
                    return Err(format!("wildcard action {action}: name each action"));
                }
                out.actions.insert(action.clone());
            }
            out.too_broad.extend(too_broad(statement, &actions));
        }
    }
    Ok(out)
}

/// The least privilege the template keeps beyond naming actions (issue 14, item 17): writes to
/// the table are limited to partitions (`dynamodb:LeadingKeys`), objects to a prefix of the
/// bucket, listing to prefixes (`s3:prefix`), email to the configured sender's identity, and KMS
/// use to the one key named.
fn too_broad(statement: &Value, actions: &[String]) -> Vec<String> {
    let resources = strings(statement.get("Resource"));
    let condition_keys: BTreeSet<String> = statement
        .get("Condition")
        .and_then(Value::as_mapping)
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_mapping)
        .flat_map(|keys| keys.keys())
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let mut out = Vec::new();
    if resources.iter().any(|r| r == "*") {
        out.push(format!("{actions:?} on every resource (\"*\")"));
    }
    for a in actions {
        let write = [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
        ];
        if write.contains(&a.as_str()) && !condition_keys.contains("dynamodb:LeadingKeys") {
            out.push(format!(
                "{a} anywhere in the table: limit it with dynamodb:LeadingKeys"
            ));
        }
        if a == "s3:ListBucket" && !condition_keys.contains("s3:prefix") {
            out.push(format!("{a} of the whole bucket: limit it with s3:prefix"));
        }
        if a.starts_with("s3:")
            && a != "s3:ListBucket"
            && resources.iter().any(|r| r.ends_with(".Arn}/*"))
        {
            out.push(format!(
                "{a} on every object of the bucket: name the prefix"
            ));
        }
        if a.starts_with("ses:") && resources.iter().any(|r| r.ends_with(":identity/*")) {
            out.push(format!("{a} as any identity: name the sender's"));
        }
        if a.starts_with("kms:") && resources.iter().any(|r| r.contains(":key/*")) {
            out.push(format!("{a} with every key: name the key (!GetAtt ….Arn)"));
        }
    }
    out
}

/// The strings in a value: `!Sub "…"`, `!GetAtt X.Arn`, lists of them, `Fn::Sub` forms.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Tagged(t)) => match &t.value {
            // `!Sub [template, variables]`: the template.
            Value::Sequence(list) => strings(list.first()),
            inner => strings(Some(inner)),
        },
        Some(Value::Sequence(list)) => list.iter().flat_map(|x| strings(Some(x))).collect(),
        Some(Value::Mapping(m)) => m.values().flat_map(|x| strings(Some(x))).collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// The code: crates, modules, functions and what each function's body does
// ---------------------------------------------------------------------------------------------

/// A module: `(crate, path from the crate root)`. A binary is a crate of its own, named
/// `lib@bin`, whose paths reach its library by the library's name.
type ModKey = (String, Vec<String>);
type FnId = usize;

#[derive(Default)]
struct Module {
    /// `use` declarations: the name in scope → the path it stands for (as written).
    uses: HashMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
    children: HashSet<String>,
    /// Free functions by name.
    fns: HashMap<String, Vec<FnId>>,
    /// Types (structs, enums, traits, aliases) declared here.
    types: HashSet<String>,
    /// The AWS SDK crate this file uses (`aws_sdk_s3`), if one: what its clients call.
    sdk: Option<String>,
}

/// Where a method call's receiver comes from, after `&`, `*`, `.clone()`, `.as_ref()`, `?` and
/// `.await` are looked through.
#[derive(Clone, Debug)]
enum Recv {
    SelfValue,
    Var(String),
    Field(String),
    Other,
}

/// How an edge is followed: a call runs its target; a handler runs when the router holding it
/// is served; `DocOnly` marks code reached to describe a router (`.into_openapi()`), from where
/// handlers are not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Edge {
    Call,
    Handler,
    DocOnly,
}

/// A `let` (or pattern) binding whose type is not written down: it gets the type of what it is
/// bound from.
#[derive(Clone, Debug)]
enum Origin {
    /// Bound from this receiver as is (`let s = deps.store.clone()`, `if let Some(w) = sink`).
    Same(Recv),
    /// Bound from what a method returns (`let w = archive.writer(..).await?`).
    MethodOf(Recv, String),
}

/// What a function's body does, as far as the call graph cares.
#[derive(Default)]
struct Facts {
    paths: Vec<(Vec<String>, Edge)>,
    methods: Vec<(Recv, String, Edge)>,
    /// Calls on a receiver that may be an SDK client: `(receiver, operation, builder methods
    /// chained on the request)`.
    sdk: Vec<(Recv, String, BTreeSet<String>)>,
    /// Paths of struct literals: constructed types, and enum variants built.
    structs: Vec<Vec<String>>,
    /// `match` arms: the arm's pattern path and the paths its body names.
    arms: Vec<(Vec<String>, Vec<Vec<String>>)>,
    /// Names with a written type: parameters and typed `let`s → the type's identifiers.
    typed: HashMap<String, BTreeSet<String>>,
    untyped: Vec<(String, Origin)>,
    /// `use` declarations inside the body.
    uses: HashMap<String, Vec<String>>,
    /// Blocks that run only when a flag field is true: `if s.flag { .. }`, `x if s.flag => ..`,
    /// and what follows `if !self.flag { return; }`.
    guarded: Vec<(String, Facts)>,
    /// Values given to fields, in struct literals and assignments: `Some(b)` for a literal
    /// bool, `None` for anything else.
    flags: Vec<(String, Option<bool>)>,
}

struct FnDef {
    module: ModKey,
    /// The impl's type, for methods.
    self_ty: Option<String>,
    /// The trait implemented (or, for a default body, declared).
    trait_: Option<String>,
    /// A default body in a trait declaration: `self` is a trait object.
    in_trait: bool,
    name: String,
    facts: Facts,
    /// `#[utoipa::path(method, path = "...")]`.
    route: Option<(String, String)>,
}

struct Port {
    /// Method → the port traits its return type names (`writer` → `ArchiveWriter`).
    methods: HashMap<String, BTreeSet<String>>,
}

#[derive(Default)]
/// Everything parsed, and indexes over it. (Maps that are walked in order are `BTreeMap`s, so
/// that the call chains printed are the same on every run.)
struct Code {
    modules: HashMap<ModKey, Module>,
    fns: Vec<FnDef>,
    /// Crate name → crates it may call (itself, its dependencies, transitively).
    scope: HashMap<String, BTreeSet<String>>,
    /// Binary name → its crate.
    bins: HashMap<String, String>,
    /// `(crate, type)` → its methods by name, inherent and trait impls.
    methods: HashMap<(String, String), HashMap<String, Vec<FnId>>>,
    /// Method name → methods of our own non-adapter types: what an untyped call may reach.
    by_name: HashMap<String, Vec<FnId>>,
    ports: HashMap<String, Port>,
    /// Type alias → the identifiers of its type (`DynStore` → `Arc`, `Store`).
    aliases: HashMap<String, BTreeSet<String>>,
    /// `(port, type)` → the impl's methods, for each type that implements a port.
    adapters: BTreeMap<(String, String), HashMap<String, FnId>>,
    /// Port → its default method bodies.
    defaults: HashMap<String, HashMap<String, FnId>>,
    /// Struct field name → the identifiers of its type.
    fields: HashMap<String, BTreeSet<String>>,
    /// `(crate, type)` → its `Drop::drop`.
    drops: BTreeMap<(String, String), FnId>,
    errors: Vec<String>,
}

/// A Cargo package of the workspace: the parts of its manifest that matter here.
struct Package {
    name: String,
    dir: PathBuf,
    bins: Vec<(String, PathBuf)>,
    deps: Vec<String>,
}

/// Reads `shared/` and `functions/*/` manifests: the package name, `[[bin]]` targets and the
/// workspace crates it depends on. (A line-based reading: these manifests are plain.)
fn packages(root: &Path) -> Vec<Package> {
    let mut dirs = vec![root.join("shared")];
    let mut functions: Vec<PathBuf> = fs::read_dir(root.join("functions"))
        .expect("reading functions/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    functions.sort();
    dirs.extend(functions);
    let unquote = |line: &str| {
        line.split_once('=')
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for dir in dirs {
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).expect("reading Cargo.toml");
        let (mut name, mut bins, mut deps) = (String::new(), Vec::new(), Vec::new());
        let mut section = String::new();
        let mut bin: (String, String) = Default::default();
        let flush = |bin: &mut (String, String), bins: &mut Vec<(String, PathBuf)>| {
            if !bin.0.is_empty() {
                bins.push((bin.0.clone(), dir.join(&bin.1)));
            }
            *bin = Default::default();
        };
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                if section == "[[bin]]" {
                    flush(&mut bin, &mut bins);
                }
                section = line.to_owned();
                continue;
            }
            let key = line.split(['=', '.', ' ']).next().unwrap_or_default();
            match (section.as_str(), key) {
                ("[package]", "name") => name = unquote(line).replace('-', "_"),
                ("[[bin]]", "name") => bin.0 = unquote(line),
                ("[[bin]]", "path") => bin.1 = unquote(line),
                ("[dependencies]", k) if k.starts_with("llmtrack-") => {
                    deps.push(k.replace('-', "_"))
                }
                _ => {}
            }
        }
        if section == "[[bin]]" {
            flush(&mut bin, &mut bins);
        }
        // Cargo's defaults when no `[[bin]]` is declared.
        if bins.is_empty() {
            if dir.join("src/main.rs").is_file() {
                bins.push((name.replace('_', "-"), dir.join("src/main.rs")));
            }
            if let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
                for e in entries.flatten() {
                    let p = e.path();
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        bins.push((stem.to_owned(), p.clone()));
                    }
                }
            }
        }
        out.push(Package {
            name,
            dir,
            bins,
            deps,
        });
    }
    out
}

impl Code {
    fn load(root: &Path) -> Code {
        let mut code = Code::default();
        let packages = packages(root);
        let deps: HashMap<String, Vec<String>> = packages
            .iter()
            .map(|p| (p.name.clone(), p.deps.clone()))
            .collect();
        for p in &packages {
            code.parse_crate(&p.name, &p.dir.join("src/lib.rs"));
            for (bin, path) in &p.bins {
                let krate = format!("{}@{bin}", p.name);
                code.parse_crate(&krate, path);
                code.bins.insert(bin.clone(), krate.clone());
                let mut scope = closure(&p.name, &deps);
                scope.insert(krate.clone());
                code.scope.insert(krate, scope);
            }
            code.scope.insert(p.name.clone(), closure(&p.name, &deps));
        }
        code.index(root);
        code
    }

    fn parse_crate(&mut self, krate: &str, root_file: &Path) {
        if root_file.is_file() {
            self.parse_module(krate, Vec::new(), root_file, None);
        }
    }

    fn parse_module(
        &mut self,
        krate: &str,
        path: Vec<String>,
        file: &Path,
        parent_sdk: Option<String>,
    ) {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let sdks: BTreeSet<&str> = text
            .match_indices("aws_sdk_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        let sdk = match sdks.len() {
            0 => parent_sdk,
            1 => sdks.iter().next().map(|s| (*s).to_owned()),
            _ => None,
        };
        // `mod x;` files: next to a crate root or `mod.rs`, else in a folder named after this file.
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let dir = if path.is_empty() || stem == "mod" {
            file.parent().unwrap().to_path_buf()
        } else {
            file.parent().unwrap().join(stem)
        };
        self.parse_items(krate, path, file, &dir, &ast.items, sdk);
    }

    #[allow(clippy::too_many_arguments)]
    fn parse_items(
        &mut self,
        krate: &str,
        path: Vec<String>,
        file: &Path,
        dir: &Path,
        items: &[syn::Item],
        sdk: Option<String>,
    ) {
        let key: ModKey = (krate.to_owned(), path.clone());
        self.modules.entry(key.clone()).or_insert_with(|| Module {
            sdk: sdk.clone(),
            ..Module::default()
        });
        for item in items {
            if is_test(item_attrs(item)) {
                continue;
            }
            match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    self.module(&key).children.insert(name.clone());
                    let mut child = path.clone();
                    child.push(name.clone());
                    match &m.content {
                        Some((_, inner)) => self.parse_items(
                            krate,
                            child,
                            file,
                            &dir.join(&name),
                            inner,
                            sdk.clone(),
                        ),
                        None => {
                            let explicit = m.attrs.iter().find_map(|a| {
                                let syn::Meta::NameValue(nv) = &a.meta else {
                                    return None;
                                };
                                if !nv.path.is_ident("path") {
                                    return None;
                                }
                                match &nv.value {
                                    syn::Expr::Lit(syn::ExprLit {
                                        lit: syn::Lit::Str(s),
                                        ..
                                    }) => Some(file.parent().unwrap().join(s.value())),
                                    _ => None,
                                }
                            });
                            let candidates = [
                                dir.join(format!("{name}.rs")),
                                dir.join(&name).join("mod.rs"),
                            ];
                            let found =
                                explicit.or_else(|| candidates.into_iter().find(|p| p.is_file()));
                            match found {
                                Some(f) => self.parse_module(krate, child, &f, sdk.clone()),
                                None => self
                                    .errors
                                    .push(format!("{}: no file for `mod {name};`", file.display())),
                            }
                        }
                    }
                }
                syn::Item::Use(u) => {
                    let mut flat = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut flat);
                    let m = self.module(&key);
                    for (alias, target) in flat {
                        match alias {
                            Some(a) => {
                                m.uses.insert(a, target);
                            }
                            None => m.globs.push(target),
                        }
                    }
                }
                syn::Item::Fn(f) => {
                    let id = self.add_fn(&key, None, None, false, &f.sig, &f.block, &f.attrs);
                    self.module(&key)
                        .fns
                        .entry(f.sig.ident.to_string())
                        .or_default()
                        .push(id);
                }
                syn::Item::Impl(i) => {
                    let Some(self_ty) = type_name(&i.self_ty) else {
                        continue;
                    };
                    let trait_ = i
                        .trait_
                        .as_ref()
                        .and_then(|(_, p, _)| p.segments.last())
                        .map(|s| s.ident.to_string());
                    for it in &i.items {
                        if let syn::ImplItem::Fn(f) = it {
                            if is_test(&f.attrs) {
                                continue;
                            }
                            let id = self.add_fn(
                                &key,
                                Some(self_ty.clone()),
                                trait_.clone(),
                                false,
                                &f.sig,
                                &f.block,
                                &f.attrs,
                            );
                            self.methods
                                .entry((krate.to_owned(), self_ty.clone()))
                                .or_default()
                                .entry(f.sig.ident.to_string())
                                .or_default()
                                .push(id);
                        }
                    }
                }
                syn::Item::Trait(t) => {
                    let name = t.ident.to_string();
                    self.module(&key).types.insert(name.clone());
                    let is_port = file.to_string_lossy().contains(PORTS_DIR);
                    let mut port = Port {
                        methods: HashMap::new(),
                    };
                    for it in &t.items {
                        let syn::TraitItem::Fn(f) = it else { continue };
                        let returns = match &f.sig.output {
                            syn::ReturnType::Type(_, ty) => type_idents(ty),
                            syn::ReturnType::Default => BTreeSet::new(),
                        };
                        port.methods.insert(f.sig.ident.to_string(), returns);
                        if let Some(body) = &f.default {
                            let id = self.add_fn(
                                &key,
                                None,
                                Some(name.clone()),
                                true,
                                &f.sig,
                                body,
                                &f.attrs,
                            );
                            self.defaults
                                .entry(name.clone())
                                .or_default()
                                .insert(f.sig.ident.to_string(), id);
                        }
                    }
                    if is_port {
                        self.ports.insert(name, port);
                    }
                }
                // `store_ports! { pub struct IngestPorts { keys: Keys, .. } }`: a struct whose
                // fields are handles to the ports their types name.
                syn::Item::Macro(m)
                    if m.mac
                        .path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "store_ports") =>
                {
                    let Ok(s) = syn::parse2::<syn::ItemStruct>(m.mac.tokens.clone()) else {
                        self.errors.push(format!(
                            "{}: a store_ports! invocation that does not read as a struct",
                            file.display()
                        ));
                        continue;
                    };
                    self.module(&key).types.insert(s.ident.to_string());
                    for field in &s.fields {
                        if let Some(name) = &field.ident {
                            self.fields
                                .entry(name.to_string())
                                .or_default()
                                .extend(type_idents(&field.ty));
                        }
                    }
                }
                syn::Item::Struct(s) => {
                    self.module(&key).types.insert(s.ident.to_string());
                    for field in &s.fields {
                        if let Some(name) = &field.ident {
                            self.fields
                                .entry(name.to_string())
                                .or_default()
                                .extend(type_idents(&field.ty));
                        }
                    }
                }
                syn::Item::Enum(e) => {
                    self.module(&key).types.insert(e.ident.to_string());
                }
                syn::Item::Type(t) => {
                    self.module(&key).types.insert(t.ident.to_string());
                    self.aliases.insert(t.ident.to_string(), type_idents(&t.ty));
                }
                _ => {}
            }
        }
    }

    fn module(&mut self, key: &ModKey) -> &mut Module {
        self.modules.get_mut(key).expect("module registered")
    }

    #[allow(clippy::too_many_arguments)]
    fn add_fn(
        &mut self,
        key: &ModKey,
        self_ty: Option<String>,
        trait_: Option<String>,
        in_trait: bool,
        sig: &syn::Signature,
        body: &syn::Block,
        attrs: &[syn::Attribute],
    ) -> FnId {
        let mut facts = Facts::default();
        for input in &sig.inputs {
            if let syn::FnArg::Typed(t) = input {
                let idents = type_idents(&t.ty);
                for name in pat_names(&t.pat) {
                    facts.typed.entry(name).or_default().extend(idents.clone());
                }
            }
        }
        // Names bound in the body: a bare `rows` that is a local variable names no function.
        struct Bound(HashSet<String>);
        impl<'a> Visit<'a> for Bound {
            fn visit_pat_ident(&mut self, p: &'a syn::PatIdent) {
                self.0.insert(p.ident.to_string());
                visit::visit_pat_ident(self, p);
            }
        }
        let mut bound = Bound(
            sig.inputs
                .iter()
                .filter_map(|i| match i {
                    syn::FnArg::Typed(t) => Some(pat_names(&t.pat)),
                    syn::FnArg::Receiver(_) => None,
                })
                .flatten()
                .collect(),
        );
        bound.visit_block(body);
        let mut v = BodyVisitor {
            facts: &mut facts,
            edge: Edge::Call,
            arm: None,
            locals: &bound.0,
        };
        v.visit_block(body);
        self.fns.push(FnDef {
            module: key.clone(),
            self_ty,
            trait_,
            in_trait,
            name: sig.ident.to_string(),
            facts,
            route: attrs.iter().find_map(utoipa_route),
        });
        self.fns.len() - 1
    }

    /// Indexes built once everything is parsed: adapters, and what untyped calls may reach.
    fn index(&mut self, root: &Path) {
        if self.ports.is_empty() {
            self.errors.push(format!(
                "no port traits found in {}",
                root.join(PORTS_DIR).display()
            ));
        }
        // Expand aliases of aliases (`DynStore` = `Arc<dyn Store>`).
        for _ in 0..4 {
            let snapshot = self.aliases.clone();
            for idents in self.aliases.values_mut() {
                let extra: Vec<String> = idents
                    .iter()
                    .filter_map(|i| snapshot.get(i))
                    .flatten()
                    .cloned()
                    .collect();
                idents.extend(extra);
            }
        }
        let mut adapter_types = HashSet::new();
        for (id, f) in self.fns.iter().enumerate() {
            let (Some(ty), Some(tr)) = (&f.self_ty, &f.trait_) else {
                continue;
            };
            if self.ports.contains_key(tr) {
                self.adapters
                    .entry((tr.clone(), ty.clone()))
                    .or_default()
                    .insert(f.name.clone(), id);
                adapter_types.insert((f.module.0.clone(), ty.clone()));
            }
            if tr == "Drop" && f.name == "drop" {
                self.drops.insert((f.module.0.clone(), ty.clone()), id);
            }
        }
        // Adapters (and their helpers) are reached through ports and `self` only: a method of
        // theirs that happens to share a name with an untyped call is not run by that call.
        for (id, f) in self.fns.iter().enumerate() {
            let Some(ty) = &f.self_ty else { continue };
            if adapter_types.contains(&(f.module.0.clone(), ty.clone())) {
                continue;
            }
            self.by_name.entry(f.name.clone()).or_default().push(id);
        }
    }

    /// The identifiers of the types a name (a receiver) is declared with, aliases expanded.
    fn types_of(&self, f: &FnDef, recv: &Recv, depth: usize) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if depth > 8 {
            return out;
        }
        match recv {
            Recv::Field(name) => {
                if let Some(t) = self.fields.get(name) {
                    out.extend(t.iter().cloned());
                }
            }
            Recv::Var(name) => {
                if let Some(t) = f.facts.typed.get(name) {
                    out.extend(t.iter().cloned());
                }
                // Untyped bindings, followed back a few steps (`let s = x; let t = s;`).
                let mut seen = HashSet::new();
                let mut todo = vec![name.clone()];
                while let Some(n) = todo.pop() {
                    if !seen.insert(n.clone()) || seen.len() > 16 {
                        continue;
                    }
                    for (bound, origin) in &f.facts.untyped {
                        if *bound != n {
                            continue;
                        }
                        match origin {
                            Origin::Same(r) => match r {
                                Recv::Var(v) => {
                                    if let Some(t) = f.facts.typed.get(v) {
                                        out.extend(t.iter().cloned());
                                    }
                                    todo.push(v.clone());
                                }
                                other => out.extend(self.types_of(f, other, depth + 1)),
                            },
                            Origin::MethodOf(r, m) => {
                                for port in self.ports_of(&self.types_of(f, r, depth + 1)) {
                                    if let Some(ret) = self.ports[&port].methods.get(m) {
                                        out.extend(ret.iter().cloned());
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Recv::SelfValue | Recv::Other => {}
        }
        let expanded: Vec<String> = out
            .iter()
            .filter_map(|i| self.aliases.get(i))
            .flatten()
            .cloned()
            .collect();
        out.extend(expanded);
        out
    }

    fn ports_of(&self, idents: &BTreeSet<String>) -> Vec<String> {
        idents
            .iter()
            .filter(|i| self.ports.contains_key(*i))
            .cloned()
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Path resolution
    // -----------------------------------------------------------------------------------------

    /// The functions a path names, seen from module `m` (in an impl of `self_ty`). A path that
    /// names a port's method (`Store::ingest`) is returned as a port call.
    fn resolve(
        &self,
        m: &ModKey,
        self_ty: Option<&str>,
        segs: &[String],
        depth: usize,
    ) -> Resolved {
        let mut out = Resolved::default();
        if segs.is_empty() || depth > 12 {
            return out;
        }
        let first = segs[0].as_str();
        let rest = &segs[1..];
        match first {
            "crate" => return self.walk(&(m.0.clone(), vec![]), rest, depth),
            "self" => return self.walk(m, rest, depth),
            "super" => {
                let mut parent = m.clone();
                parent.1.pop();
                return self.walk(&parent, rest, depth);
            }
            "Self" => {
                if let (Some(ty), [name]) = (self_ty, rest) {
                    out.fns.extend(self.method_of(&m.0, ty, name));
                }
                return out;
            }
            _ => {}
        }
        self.walk(m, segs, depth)
    }

    /// Resolves `segs` inside module `m`: `uses`, child modules, types, crates, then functions.
    fn walk(&self, m: &ModKey, segs: &[String], depth: usize) -> Resolved {
        let mut out = Resolved::default();
        if segs.is_empty() || depth > 12 {
            return out;
        }
        let Some(module) = self.modules.get(m) else {
            return out;
        };
        let first = &segs[0];
        let rest = &segs[1..];
        if rest.is_empty()
            && let Some(ids) = module.fns.get(first)
        {
            out.fns.extend(ids.iter().copied());
            return out;
        }
        if matches!(first.as_str(), "crate" | "self" | "super") {
            return self.resolve(m, None, segs, depth + 1);
        }
        if let Some(target) = module.uses.get(first) {
            let mut full = target.clone();
            full.extend(rest.iter().cloned());
            return self.resolve(m, None, &full, depth + 1);
        }
        if module.children.contains(first) && !rest.is_empty() {
            let mut child = m.clone();
            child.1.push(first.clone());
            return self.walk(&child, rest, depth + 1);
        }
        if let [name] = rest {
            if self.ports.contains_key(first) {
                out.ports.push((first.clone(), name.clone()));
                return out;
            }
            if module.types.contains(first) {
                out.fns.extend(self.method_of(&m.0, first, name));
                return out;
            }
        }
        if self.is_crate(first) {
            return self.walk(&(first.clone(), vec![]), rest, depth + 1);
        }
        for glob in &module.globs {
            let mut full = glob.clone();
            full.extend(segs.iter().cloned());
            let r = self.resolve(m, None, &full, depth + 1);
            if !r.fns.is_empty() || !r.ports.is_empty() {
                return r;
            }
        }
        out
    }

    fn is_crate(&self, name: &str) -> bool {
        self.modules.contains_key(&(name.to_owned(), vec![]))
    }

    fn method_of(&self, krate: &str, ty: &str, name: &str) -> Vec<FnId> {
        // Impl blocks may be in another crate than the caller (a binary calling its library's
        // type): look in the caller's crate first, then everywhere in scope.
        if let Some(ids) = self
            .methods
            .get(&(krate.to_owned(), ty.to_owned()))
            .and_then(|m| m.get(name))
        {
            return ids.clone();
        }
        let scope = self.scope.get(krate).cloned().unwrap_or_default();
        scope
            .iter()
            .filter_map(|c| {
                self.methods
                    .get(&(c.clone(), ty.to_owned()))
                    .and_then(|m| m.get(name))
            })
            .flatten()
            .copied()
            .collect()
    }

    fn describe(&self, id: FnId) -> String {
        let f = &self.fns[id];
        let mut s = f.module.0.clone();
        for p in &f.module.1 {
            s.push_str("::");
            s.push_str(p);
        }
        if let Some(ty) = f
            .self_ty
            .as_ref()
            .or(f.trait_.as_ref().filter(|_| f.in_trait))
        {
            s.push_str("::");
            s.push_str(ty);
        }
        s.push_str("::");
        s.push_str(&f.name);
        s
    }

    // -----------------------------------------------------------------------------------------
    // Reachability
    // -----------------------------------------------------------------------------------------

    /// Everything the binary's `main` can reach, the IAM actions that code calls, and the routes
    /// its router serves.
    fn reach(&self, binary: &str) -> Reach {
        let mut reach = Reach::default();
        let Some(krate) = self.bins.get(binary) else {
            reach.actions.insert(
                format!("<no binary `{binary}` in any Cargo.toml>"),
                String::new(),
            );
            return reach;
        };
        let main = self
            .modules
            .get(&(krate.clone(), vec![]))
            .and_then(|m| m.fns.get("main"))
            .and_then(|v| v.first());
        let Some(&main) = main else {
            reach
                .actions
                .insert(format!("<binary `{binary}` has no main>"), String::new());
            return reach;
        };
        let mut w = Walk::new(self, &self.scope[krate], main);
        // Trait impls of our own types run without a call written anywhere (`?` runs `From`,
        // axum runs extractors and `IntoResponse`): they are roots too.
        for (id, f) in self.fns.iter().enumerate() {
            let implicit = f.trait_.as_deref().is_some_and(|t| t != "Drop")
                && !f.in_trait
                && w.scope.contains(&f.module.0)
                && self.by_name.get(&f.name).is_some_and(|v| v.contains(&id));
            if implicit {
                w.queue.push_back((id, true, None));
            }
        }
        w.run();

        // The routes served: handlers reached from a served router.
        for &id in &w.handlers {
            if let Some(route) = &self.fns[id].route {
                reach.routes.insert(route.clone());
            }
        }

        // SDK operations in the reached code.
        let mut transact_helpers = Vec::new();
        for &(id, facts) in &w.processed {
            let f = &self.fns[id];
            let Some(sdk) = self.modules.get(&f.module).and_then(|m| m.sdk.clone()) else {
                continue;
            };
            for (recv, op, chained) in &facts.sdk {
                let is_client = matches!(recv, Recv::Field(n) | Recv::Var(n) if n == "client")
                    || self.types_of(f, recv, 0).contains("Client");
                if !is_client || NOT_OPERATIONS.contains(&op.as_str()) {
                    continue;
                }
                let why = format!("{}\n        → {sdk}::{op}", w.chain(id));
                if sdk == "aws_sdk_dynamodb" && op == "transact_write_items" {
                    transact_helpers.push(id);
                    continue;
                }
                let Some((_, _, action)) =
                    SDK_ACTIONS.iter().find(|(s, o, _)| *s == sdk && o == op)
                else {
                    reach
                        .actions
                        .insert(format!("<{sdk}::{op}: add it to SDK_ACTIONS>"), why);
                    continue;
                };
                reach
                    .actions
                    .entry((*action).to_owned())
                    .or_insert_with(|| why.clone());
                for (s, o, option, a) in SDK_OPTION_ACTIONS {
                    if *s == sdk && o == op && chained.contains(*option) {
                        reach
                            .actions
                            .entry((*a).to_owned())
                            .or_insert_with(|| format!("{why} (with .{option})"));
                    }
                }
            }
        }
        // A transaction needs the action of each kind of item it writes. The helper that sends
        // it matches on an enum of steps; each arm builds one kind of item. The steps the reached
        // code constructs are the items this binary's transactions can hold.
        transact_helpers.sort();
        transact_helpers.dedup();
        for helper in transact_helpers {
            let mut variants: HashMap<(String, String), BTreeSet<&str>> = HashMap::new();
            for (pat, body_paths) in &self.fns[helper].facts.arms {
                let [.., e, v] = pat.as_slice() else { continue };
                for p in body_paths {
                    let [.., builder, call] = p.as_slice() else {
                        continue;
                    };
                    if call != "builder" {
                        continue;
                    }
                    if let Some((_, action)) = TRANSACT_ITEMS.iter().find(|(b, _)| b == builder) {
                        variants
                            .entry((e.clone(), v.clone()))
                            .or_default()
                            .insert(action);
                    }
                }
            }
            if variants.is_empty() {
                let what = format!(
                    "<{}: transact_write_items whose items cannot be read>",
                    self.describe(helper)
                );
                reach.actions.insert(what, w.chain(helper));
            }
            let enums: HashSet<&String> = variants.keys().map(|(e, _)| e).collect();
            for &(id, facts) in &w.processed {
                let built = facts
                    .structs
                    .iter()
                    .chain(facts.paths.iter().map(|(p, _)| p));
                for p in built {
                    let [.., e, v] = p.as_slice() else { continue };
                    if !enums.contains(e) {
                        continue;
                    }
                    let why = format!(
                        "{}\n        → {e}::{v} in {}",
                        w.chain(id),
                        self.describe(helper)
                    );
                    match variants.get(&(e.clone(), v.clone())) {
                        Some(actions) => {
                            for a in actions {
                                reach
                                    .actions
                                    .entry((*a).to_owned())
                                    .or_insert_with(|| why.clone());
                            }
                        }
                        None => {
                            reach
                                .actions
                                .insert(format!("<{e}::{v}: no item builder in its arm>"), why);
                        }
                    }
                }
            }
        }
        for u in &w.unresolved {
            reach
                .actions
                .insert(format!("<port call {u}: no impl method>"), String::new());
        }
        reach
    }

    /// What a method call may run.
    fn method_targets(
        &self,
        f: &FnDef,
        recv: &Recv,
        method: &str,
        scope: &BTreeSet<String>,
    ) -> Targets {
        if let Recv::SelfValue = recv {
            if f.in_trait
                && let Some(t) = f.trait_.as_ref().filter(|t| self.ports.contains_key(*t))
            {
                return Targets::Port(t.clone());
            }
            if let Some(ty) = &f.self_ty {
                let own = self.method_of(&f.module.0, ty, method);
                if !own.is_empty() {
                    return Targets::Fns(own);
                }
            }
        } else {
            for port in self.ports_of(&self.types_of(f, recv, 0)) {
                if self.ports[&port].methods.contains_key(method) {
                    return Targets::Port(port);
                }
            }
        }
        Targets::Fns(
            self.by_name
                .get(method)
                .into_iter()
                .flatten()
                .copied()
                .filter(|id| scope.contains(&self.fns[*id].module.0))
                .collect(),
        )
    }
}

/// The walk of one binary's call graph.
struct Walk<'c> {
    code: &'c Code,
    scope: &'c BTreeSet<String>,
    queue: VecDeque<(FnId, bool, Option<FnId>)>,
    /// How each function was first reached (for the chains printed).
    parent: HashMap<FnId, Option<FnId>>,
    seen: HashSet<(FnId, bool)>,
    /// The facts that apply: each reached function's, and those of its guarded blocks whose
    /// flag may be true.
    processed: Vec<(FnId, &'c Facts)>,
    /// Guarded blocks of reached functions, not yet known to run: `(function, flag, facts)`.
    guarded: Vec<(FnId, &'c str, &'c Facts, bool)>,
    /// Flag field → the values reached code gives it (`Some(false)`: the literal `false`).
    flags: HashMap<&'c str, HashSet<Option<bool>>>,
    instantiated: HashSet<String>,
    port_calls: BTreeMap<(String, String), FnId>,
    dispatched: HashSet<FnId>,
    handlers: BTreeSet<FnId>,
    unresolved: BTreeSet<String>,
}

impl<'c> Walk<'c> {
    fn new(code: &'c Code, scope: &'c BTreeSet<String>, main: FnId) -> Walk<'c> {
        Walk {
            code,
            scope,
            queue: VecDeque::from([(main, true, None)]),
            parent: HashMap::new(),
            seen: HashSet::new(),
            processed: Vec::new(),
            guarded: Vec::new(),
            flags: HashMap::new(),
            instantiated: HashSet::new(),
            port_calls: BTreeMap::new(),
            dispatched: HashSet::new(),
            handlers: BTreeSet::new(),
            unresolved: BTreeSet::new(),
        }
    }

    fn run(&mut self) {
        let code = self.code;
        loop {
            while let Some((id, serving, from)) = self.queue.pop_front() {
                if !self.seen.insert((id, serving)) {
                    continue;
                }
                self.parent.entry(id).or_insert(from);
                self.process(id, &code.fns[id].facts, serving);
            }
            let mut more = false;
            // A block under `if x.flag` runs unless every value reached code gives `flag` is the
            // literal `false` (`run_jobs_here: false` in a Lambda's state).
            for i in 0..self.guarded.len() {
                let (id, flag, facts, done) = self.guarded[i];
                let off = self
                    .flags
                    .get(flag)
                    .is_some_and(|v| !v.is_empty() && v.iter().all(|x| *x == Some(false)));
                if done || off {
                    continue;
                }
                self.guarded[i].3 = true;
                let serving = self.seen.contains(&(id, true));
                self.process(id, facts, serving);
                more = true;
            }
            // Port calls run the impls of the adapters this binary constructs; a `Drop` impl
            // runs wherever its type is constructed.
            let calls: Vec<((String, String), FnId)> = self
                .port_calls
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            for ((port, method), caller) in calls {
                for ((p, ty), impls) in &code.adapters {
                    if *p != port || !self.instantiated.contains(ty) {
                        continue;
                    }
                    let target = impls.get(&method).copied().or_else(|| {
                        code.defaults
                            .get(&port)
                            .and_then(|d| d.get(&method))
                            .copied()
                    });
                    match target {
                        Some(t) if self.dispatched.insert(t) => {
                            self.queue.push_back((t, true, Some(caller)));
                            more = true;
                        }
                        Some(_) => {}
                        None => {
                            self.unresolved.insert(format!("{port}::{method} on {ty}"));
                        }
                    }
                }
            }
            for ((_, ty), drop) in &code.drops {
                if self.instantiated.contains(ty) && self.dispatched.insert(*drop) {
                    self.queue.push_back((*drop, true, None));
                    more = true;
                }
            }
            if !more && self.queue.is_empty() {
                break;
            }
        }
    }

    /// Follows what one function (or one guarded block of it) does.
    fn process(&mut self, id: FnId, facts: &'c Facts, serving: bool) {
        let code = self.code;
        let f = &code.fns[id];
        self.processed.push((id, facts));
        for (flag, inner) in &facts.guarded {
            self.guarded.push((id, flag.as_str(), inner, false));
        }
        for (field, value) in &facts.flags {
            self.flags.entry(field.as_str()).or_default().insert(*value);
        }
        for path in &facts.structs {
            match path.last().map(String::as_str) {
                Some("Self") => {
                    if let Some(ty) = &f.self_ty {
                        self.instantiated.insert(ty.clone());
                    }
                }
                Some(ty) => {
                    self.instantiated.insert(ty.to_owned());
                }
                None => {}
            }
        }
        for (segs, edge) in &facts.paths {
            let next = match edge {
                Edge::Call => serving,
                Edge::DocOnly => false,
                Edge::Handler if serving => true,
                Edge::Handler => continue,
            };
            let r = match f.facts.uses.get(&segs[0]) {
                Some(target) => {
                    let full: Vec<String> = target.iter().chain(&segs[1..]).cloned().collect();
                    code.resolve(&f.module, f.self_ty.as_deref(), &full, 0)
                }
                None => code.resolve(&f.module, f.self_ty.as_deref(), segs, 0),
            };
            for t in r.fns {
                if *edge == Edge::Handler {
                    self.handlers.insert(t);
                }
                self.queue.push_back((t, next, Some(id)));
            }
            for p in r.ports {
                self.port_calls.entry(p).or_insert(id);
            }
        }
        for (recv, method, edge) in &facts.methods {
            let next = serving && *edge != Edge::DocOnly;
            match code.method_targets(f, recv, method, self.scope) {
                Targets::Port(p) => {
                    self.port_calls.entry((p, method.clone())).or_insert(id);
                }
                Targets::Fns(ids) => {
                    for t in ids {
                        self.queue.push_back((t, next, Some(id)));
                    }
                }
            }
        }
    }

    /// `main → … → id`, one function a line.
    fn chain(&self, id: FnId) -> String {
        let code = self.code;
        let mut names = vec![code.describe(id)];
        let mut cur = id;
        while let Some(Some(p)) = self.parent.get(&cur) {
            if names.len() > 40 {
                break;
            }
            names.push(code.describe(*p));
            cur = *p;
        }
        names.reverse();
        names.join("\n        → ")
    }
}

#[derive(Default)]
struct Resolved {
    fns: Vec<FnId>,
    ports: Vec<(String, String)>,
}

enum Targets {
    Port(String),
    Fns(Vec<FnId>),
}

#[derive(Default)]
struct Reach {
    /// IAM action → the call chain that needs it.
    actions: BTreeMap<String, String>,
    routes: BTreeSet<(String, String)>,
}

fn closure(krate: &str, deps: &HashMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::from([krate.to_owned(), "llmtrack_shared".to_owned()]);
    let mut todo = vec![krate.to_owned()];
    while let Some(c) = todo.pop() {
        for d in deps.get(&c).into_iter().flatten() {
            if out.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading syntax
// ---------------------------------------------------------------------------------------------

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]` and `#[test]` code never runs in a Lambda.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        if p.is_ident("test")
            || p.segments.last().is_some_and(|s| s.ident == "test") && p.segments.len() == 2
        {
            return true;
        }
        if p.is_ident("cfg")
            && let syn::Meta::List(l) = &a.meta
        {
            return l.tokens.to_string().trim() == "test";
        }
        false
    })
}

/// `(METHOD, path)` of a `#[utoipa::path(get, path = "/v1/...", ...)]`.
fn utoipa_route(attr: &syn::Attribute) -> Option<(String, String)> {
    let segs: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    if segs != ["utoipa", "path"] {
        return None;
    }
    let syn::Meta::List(list) = &attr.meta else {
        return None;
    };
    let text = list.tokens.to_string();
    let method = text.split(',').next()?.trim().to_ascii_uppercase();
    let at = text.find("path =")?;
    let after = &text[at..];
    let start = after.find('"')? + 1;
    let end = after[start..].find('"')? + start;
    Some((method, after[start..end].to_owned()))
}

/// `use a::{b, c as d, e::*}` → `[(b, a::b), (d, a::c), (glob a::e)]`.
fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((Some(last.clone()), prefix.clone()));
                }
            } else {
                let mut full = prefix.clone();
                full.push(name.clone());
                out.push((Some(name), full));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.clone();
            full.push(r.ident.to_string());
            if r.rename != "_" {
                out.push((Some(r.rename.to_string()), full));
            }
        }
        syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        syn::Type::Reference(r) => type_name(&r.elem),
        _ => None,
    }
}

/// Every identifier in a type: `Option<&mut Box<dyn ArchiveWriter>>` → Option, Box, ArchiveWriter.
fn type_idents(ty: &syn::Type) -> BTreeSet<String> {
    struct Idents(BTreeSet<String>);
    impl<'a> Visit<'a> for Idents {
        fn visit_path_segment(&mut self, s: &'a syn::PathSegment) {
            self.0.insert(s.ident.to_string());
            visit::visit_path_segment(self, s);
        }
    }
    let mut v = Idents(BTreeSet::new());
    v.visit_type(ty);
    v.0
}

fn pat_names(pat: &syn::Pat) -> Vec<String> {
    struct Names(Vec<String>);
    impl<'a> Visit<'a> for Names {
        fn visit_pat_ident(&mut self, p: &'a syn::PatIdent) {
            self.0.push(p.ident.to_string());
            visit::visit_pat_ident(self, p);
        }
    }
    let mut v = Names(Vec::new());
    v.visit_pat(pat);
    v.0
}

fn path_segs(p: &syn::Path) -> Vec<String> {
    p.segments.iter().map(|s| s.ident.to_string()).collect()
}

/// The value a receiver comes from, looking through references, clones and `?`/`.await`.
fn recv_of(e: &syn::Expr) -> Recv {
    match e {
        syn::Expr::Path(p) if p.path.is_ident("self") => Recv::SelfValue,
        syn::Expr::Path(p) if p.path.segments.len() == 1 => {
            Recv::Var(p.path.segments[0].ident.to_string())
        }
        syn::Expr::Field(f) => match &f.member {
            syn::Member::Named(n) => Recv::Field(n.to_string()),
            syn::Member::Unnamed(_) => recv_of(&f.base),
        },
        syn::Expr::Reference(r) => recv_of(&r.expr),
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => recv_of(&u.expr),
        syn::Expr::Paren(p) => recv_of(&p.expr),
        syn::Expr::Try(t) => recv_of(&t.expr),
        syn::Expr::Await(a) => recv_of(&a.base),
        syn::Expr::MethodCall(m)
            if matches!(
                m.method.to_string().as_str(),
                "clone"
                    | "as_ref"
                    | "as_mut"
                    | "as_deref"
                    | "as_deref_mut"
                    | "unwrap"
                    | "expect"
                    | "borrow"
            ) =>
        {
            recv_of(&m.receiver)
        }
        _ => Recv::Other,
    }
}

/// The origin of a value bound without a type: the receiver it is, or a method call on one.
fn origin_of(e: &syn::Expr) -> Option<Origin> {
    match e {
        syn::Expr::Try(t) => origin_of(&t.expr),
        syn::Expr::Await(a) => origin_of(&a.base),
        syn::Expr::Paren(p) => origin_of(&p.expr),
        syn::Expr::Reference(r) => origin_of(&r.expr),
        syn::Expr::MethodCall(m)
            if !matches!(
                m.method.to_string().as_str(),
                "clone"
                    | "as_ref"
                    | "as_mut"
                    | "as_deref"
                    | "as_deref_mut"
                    | "unwrap"
                    | "expect"
                    | "borrow"
            ) =>
        {
            Some(Origin::MethodOf(recv_of(&m.receiver), m.method.to_string()))
        }
        other => match recv_of(other) {
            Recv::Other => None,
            r => Some(Origin::Same(r)),
        },
    }
}

/// Walks a function body, recording into `facts`.
struct BodyVisitor<'f> {
    facts: &'f mut Facts,
    locals: &'f HashSet<String>,
    edge: Edge,
    /// Paths named inside the `match` arm being walked.
    arm: Option<Vec<Vec<String>>>,
}

impl BodyVisitor<'_> {
    fn path(&mut self, segs: Vec<String>) {
        if let Some(arm) = &mut self.arm {
            arm.push(segs.clone());
        }
        self.facts.paths.push((segs, self.edge));
    }

    fn bind(&mut self, pat: &syn::Pat, init: Option<&syn::Expr>) {
        if let syn::Pat::Type(t) = pat {
            let idents = type_idents(&t.ty);
            for name in pat_names(&t.pat) {
                self.facts
                    .typed
                    .entry(name)
                    .or_default()
                    .extend(idents.clone());
            }
            return;
        }
        let Some(init) = init else { return };
        // `let (a, b) = (x.clone(), y.clone())`: pair them up.
        if let (syn::Pat::Tuple(pt), syn::Expr::Tuple(et)) = (pat, init) {
            for (p, e) in pt.elems.iter().zip(et.elems.iter()) {
                self.bind(p, Some(e));
            }
            return;
        }
        if let Some(origin) = origin_of(init) {
            for name in pat_names(pat) {
                self.facts.untyped.push((name, origin.clone()));
            }
        }
    }

    /// Walks what `visit` reaches as a block that runs only when `flag` is true.
    fn guarded(&mut self, flag: String, visit: impl FnOnce(&mut BodyVisitor<'_>)) {
        let mut inner = Facts::default();
        visit(&mut BodyVisitor {
            facts: &mut inner,
            edge: self.edge,
            arm: None,
            locals: self.locals,
        });
        // Names and their types belong to the whole function.
        for (name, types) in std::mem::take(&mut inner.typed) {
            self.facts.typed.entry(name).or_default().extend(types);
        }
        self.facts.untyped.append(&mut inner.untyped);
        self.facts.uses.extend(std::mem::take(&mut inner.uses));
        self.facts.guarded.push((flag, inner));
    }

    /// Macro arguments: read as expressions when they are, else scanned for calls.
    fn macro_tokens(&mut self, mac: &syn::Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            let outer = self.edge;
            if name == "routes" && self.edge == Edge::Call {
                self.edge = Edge::Handler;
            }
            for a in &args {
                self.visit_expr(a);
            }
            self.edge = outer;
            return;
        }
        // Not expressions (`tracing::warn!(key = %x, "...")`, `matches!(x, pat)`): scan the
        // tokens for `name.method(` and `a::b(`.
        let buffer = syn::buffer::TokenBuffer::new2(mac.tokens.clone());
        let mut flat = Vec::new();
        flatten_tokens(buffer.begin(), &mut flat);
        for i in 0..flat.len() {
            if let (Some(Tok::Punct('.')), Some(Tok::Ident(m)), Some(Tok::Open)) =
                (flat.get(i), flat.get(i + 1), flat.get(i + 2))
            {
                let recv = match (
                    i.checked_sub(1).and_then(|j| flat.get(j)),
                    i.checked_sub(2).and_then(|j| flat.get(j)),
                ) {
                    (Some(Tok::Ident(r)), Some(Tok::Punct('.'))) => Recv::Field(r.clone()),
                    (Some(Tok::Ident(r)), _) if r == "self" => Recv::SelfValue,
                    (Some(Tok::Ident(r)), _) => Recv::Var(r.clone()),
                    _ => Recv::Other,
                };
                self.facts.methods.push((recv, m.clone(), self.edge));
            }
            if let Some(Tok::Ident(first)) = flat.get(i) {
                let starts = !matches!(
                    i.checked_sub(1).and_then(|j| flat.get(j)),
                    Some(Tok::Punct('.' | ':'))
                );
                if !starts {
                    continue;
                }
                let mut segs = vec![first.clone()];
                let mut j = i + 1;
                while let (Some(Tok::Punct(':')), Some(Tok::Punct(':')), Some(Tok::Ident(s))) =
                    (flat.get(j), flat.get(j + 1), flat.get(j + 2))
                {
                    segs.push(s.clone());
                    j += 3;
                }
                if matches!(flat.get(j), Some(Tok::Open)) {
                    self.path(segs);
                }
            }
        }
    }
}

#[derive(Debug)]
enum Tok {
    Ident(String),
    Punct(char),
    /// An opening parenthesis.
    Open,
    Other,
}

fn flatten_tokens(mut cursor: syn::buffer::Cursor, out: &mut Vec<Tok>) {
    while !cursor.eof() {
        if let Some((ident, next)) = cursor.ident() {
            out.push(Tok::Ident(ident.to_string()));
            cursor = next;
        } else if let Some((punct, next)) = cursor.punct() {
            out.push(Tok::Punct(punct.as_char()));
            cursor = next;
        } else if let Some((inside, delimiter, _, next)) = cursor.any_group() {
            out.push(if format!("{delimiter:?}") == "Parenthesis" {
                Tok::Open
            } else {
                Tok::Other
            });
            flatten_tokens(inside, out);
            out.push(Tok::Other);
            cursor = next;
        } else if let Some((_, next)) = cursor.token_tree() {
            out.push(Tok::Other);
            cursor = next;
        } else {
            break;
        }
    }
}

/// `x.flag` (true) or `!x.flag` (false), alone or as one side of `&&` (true only).
fn flag_of(cond: &syn::Expr) -> Option<(String, bool)> {
    match cond {
        syn::Expr::Paren(p) => flag_of(&p.expr),
        syn::Expr::Field(f) => match &f.member {
            syn::Member::Named(n) => Some((n.to_string(), true)),
            syn::Member::Unnamed(_) => None,
        },
        syn::Expr::Unary(u) if matches!(u.op, syn::UnOp::Not(_)) => {
            flag_of(&u.expr).map(|(f, positive)| (f, !positive))
        }
        syn::Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => [&*b.left, &*b.right]
            .into_iter()
            .filter_map(flag_of)
            .find(|(_, positive)| *positive),
        _ => None,
    }
}

/// `if !x.flag { return; }` (or `continue`, `break`): the flag the rest of the block needs.
fn early_exit_unless(stmt: &syn::Stmt) -> Option<String> {
    let syn::Stmt::Expr(syn::Expr::If(i), _) = stmt else {
        return None;
    };
    if i.else_branch.is_some() {
        return None;
    }
    let (flag, false) = flag_of(&i.cond)? else {
        return None;
    };
    let exits = match i.then_branch.stmts.last()? {
        syn::Stmt::Expr(e, _) => matches!(
            e,
            syn::Expr::Return(_) | syn::Expr::Continue(_) | syn::Expr::Break(_)
        ),
        _ => false,
    };
    exits.then_some(flag)
}

fn literal_bool(e: &syn::Expr) -> Option<bool> {
    match e {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(b),
            ..
        }) => Some(b.value),
        _ => None,
    }
}

impl<'a> Visit<'a> for BodyVisitor<'_> {
    fn visit_block(&mut self, b: &'a syn::Block) {
        for (i, stmt) in b.stmts.iter().enumerate() {
            self.visit_stmt(stmt);
            if let Some(flag) = early_exit_unless(stmt) {
                self.guarded(flag, |v| {
                    for rest in &b.stmts[i + 1..] {
                        v.visit_stmt(rest);
                    }
                });
                return;
            }
        }
    }

    fn visit_expr_if(&mut self, i: &'a syn::ExprIf) {
        self.visit_expr(&i.cond);
        let flag = flag_of(&i.cond);
        match &flag {
            Some((f, true)) => self.guarded(f.clone(), |v| v.visit_block(&i.then_branch)),
            _ => self.visit_block(&i.then_branch),
        }
        if let Some((_, e)) = &i.else_branch {
            match flag {
                Some((f, false)) => self.guarded(f, |v| v.visit_expr(e)),
                _ => self.visit_expr(e),
            }
        }
    }

    fn visit_expr_assign(&mut self, a: &'a syn::ExprAssign) {
        if let syn::Expr::Field(f) = &*a.left
            && let syn::Member::Named(n) = &f.member
        {
            self.facts
                .flags
                .push((n.to_string(), literal_bool(&a.right)));
        }
        visit::visit_expr_assign(self, a);
    }

    fn visit_expr_path(&mut self, p: &'a syn::ExprPath) {
        let segs = path_segs(&p.path);
        if !(segs.len() == 1 && self.locals.contains(&segs[0])) {
            self.path(segs);
        }
        visit::visit_expr_path(self, p);
    }

    fn visit_expr_call(&mut self, c: &'a syn::ExprCall) {
        // `f(..)` with a local named `f` too: still a call, of either; count the function.
        match &*c.func {
            syn::Expr::Path(p) if p.path.segments.len() == 1 => {
                self.path(path_segs(&p.path));
                for a in &c.args {
                    self.visit_expr(a);
                }
            }
            _ => visit::visit_expr_call(self, c),
        }
    }

    fn visit_expr_struct(&mut self, s: &'a syn::ExprStruct) {
        for field in &s.fields {
            if let syn::Member::Named(n) = &field.member {
                self.facts
                    .flags
                    .push((n.to_string(), literal_bool(&field.expr)));
            }
        }
        let segs = path_segs(&s.path);
        if let Some(arm) = &mut self.arm {
            arm.push(segs.clone());
        }
        self.facts.structs.push(segs);
        visit::visit_expr_struct(self, s);
    }

    fn visit_expr_method_call(&mut self, m: &'a syn::ExprMethodCall) {
        let method = m.method.to_string();
        let recv = recv_of(&m.receiver);
        self.facts.methods.push((recv, method.clone(), self.edge));
        // An SDK request is a chain `client.op().a(..).b(..).send()`: from each link, walk down to
        // the client, noting the builder methods on the way.
        let mut chained = BTreeSet::from([method.clone()]);
        let mut cur: &syn::Expr = &m.receiver;
        let mut op = method.clone();
        loop {
            match cur {
                syn::Expr::MethodCall(inner) => {
                    chained.insert(op.clone());
                    op = inner.method.to_string();
                    cur = &inner.receiver;
                }
                syn::Expr::Await(a) => cur = &a.base,
                syn::Expr::Try(t) => cur = &t.expr,
                syn::Expr::Paren(p) => cur = &p.expr,
                _ => break,
            }
        }
        chained.remove(&op);
        let root = recv_of(cur);
        if !matches!(root, Recv::Other | Recv::SelfValue) {
            self.facts.sdk.push((root, op, chained));
        }
        if method == "into_openapi" {
            // The router is built only to be described: its handlers do not run.
            let outer = self.edge;
            self.edge = Edge::DocOnly;
            self.visit_expr(&m.receiver);
            self.edge = outer;
            for a in &m.args {
                self.visit_expr(a);
            }
            return;
        }
        visit::visit_expr_method_call(self, m);
    }

    fn visit_local(&mut self, l: &'a syn::Local) {
        self.bind(&l.pat, l.init.as_ref().map(|i| &*i.expr));
        visit::visit_local(self, l);
    }

    fn visit_expr_let(&mut self, l: &'a syn::ExprLet) {
        self.bind(&l.pat, Some(&l.expr));
        visit::visit_expr_let(self, l);
    }

    fn visit_expr_match(&mut self, m: &'a syn::ExprMatch) {
        self.visit_expr(&m.expr);
        for arm in &m.arms {
            self.bind(&arm.pat, Some(&m.expr));
            let pat = match &arm.pat {
                syn::Pat::Struct(s) => Some(path_segs(&s.path)),
                syn::Pat::TupleStruct(s) => Some(path_segs(&s.path)),
                syn::Pat::Path(p) => Some(path_segs(&p.path)),
                _ => None,
            };
            let outer = self.arm.replace(Vec::new());
            let mut flag = None;
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
                flag = flag_of(guard).filter(|(_, positive)| *positive);
            }
            match flag {
                Some((f, _)) => self.guarded(f, |v| v.visit_expr(&arm.body)),
                None => self.visit_expr(&arm.body),
            }
            let named = std::mem::replace(&mut self.arm, outer).unwrap_or_default();
            if let Some(outer) = &mut self.arm {
                outer.extend(named.iter().cloned());
            }
            if let Some(pat) = pat {
                self.facts.arms.push((pat, named));
            }
        }
    }

    fn visit_expr_closure(&mut self, c: &'a syn::ExprClosure) {
        for input in &c.inputs {
            if let syn::Pat::Type(t) = input {
                let idents = type_idents(&t.ty);
                for name in pat_names(&t.pat) {
                    self.facts
                        .typed
                        .entry(name)
                        .or_default()
                        .extend(idents.clone());
                }
            }
        }
        visit::visit_expr_closure(self, c);
    }

    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        let mut flat = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut flat);
        for (alias, target) in flat {
            if let Some(a) = alias {
                self.facts.uses.insert(a, target);
            }
        }
    }

    fn visit_macro(&mut self, mac: &'a syn::Macro) {
        self.macro_tokens(mac);
    }

    // Items nested in a body (a helper `fn` inside a function) count as part of it.
}
