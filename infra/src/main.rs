//! `llmtrack`: the local and self-hosted server (`serve`) and operator commands (`admin`,
//! `jobs`); the commands themselves are in `llmtrack::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    llmtrack::cli::main().await
}
