//! `concierge-local`: the whole system on loopback (`make run`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use concierge_local::emulator::Emulator;
use concierge_local::{LocalStack, StackOptions, repo_root};

/// Runs Concierge locally: AWS emulator, the template's resources, the example tenants, the
/// HTTP API (like `sam local start-api`) and the Lambda Invoke API (like `sam local start-lambda`).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Tenants file (JSON or YAML) to load.
    #[arg(long, default_value_os_t = repo_root().join("infra/local/tenants.example.json"))]
    tenants: PathBuf,
    /// Port of the HTTP API.
    #[arg(long, default_value_t = 3000)]
    api_port: u16,
    /// Port of the Lambda Invoke API.
    #[arg(long, default_value_t = 3001)]
    lambda_port: u16,
    /// Port of the emulator started here (ignored when AWS_ENDPOINT_URL is set).
    #[arg(long, default_value_t = 4566)]
    emulator_port: u16,
    /// Secrets and overrides per function, in `sam local invoke --env-vars` format.
    #[arg(long, default_value_os_t = repo_root().join("infra/local/env.json"))]
    env_vars: PathBuf,
    /// Where local state lives (master key, emulator log).
    #[arg(long, default_value_os_t = repo_root().join(".local"))]
    state_dir: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    concierge::telemetry::init();
    let args = Args::parse();
    let emulator = Emulator::start_or_attach(args.emulator_port, Some(args.state_dir.join("moto.log"))).await?;
    let mut options = StackOptions::new("concierge", &args.state_dir, args.api_port);
    options.tenants = Some(args.tenants.clone());
    options.env_vars = args.env_vars;
    let stack = LocalStack::build(emulator.sdk_config().await, &options).await?;

    let api = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.api_port)))
        .await
        .with_context(|| format!("port {} is taken (use --api-port)", args.api_port))?;
    let lambda = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.lambda_port)))
        .await
        .with_context(|| format!("port {} is taken (use --lambda-port)", args.lambda_port))?;

    println!("Concierge local stack");
    println!("  emulator    {}", emulator.endpoint);
    println!("  tenants     {}", args.tenants.display());
    for f in &stack.functions {
        println!("  function    {} ({})", f.def.logical_id, f.def.binary);
        for r in &f.def.http_routes {
            println!("    {:<5} http://127.0.0.1:{}{}", r.method, args.api_port, r.path);
        }
        for s in &f.def.schedules {
            println!("    every {}", s.expression);
            println!("    POST  http://127.0.0.1:{}/schedules/{} (fire it now)", args.lambda_port, f.def.logical_id);
        }
    }
    println!("  lambda API  http://127.0.0.1:{} (aws lambda invoke --endpoint-url …)", args.lambda_port);
    println!("  sandbox     http://127.0.0.1:{}/sandbox/outbox (what would have been sent)", args.api_port);
    for (id, name) in &stack.provisioned.refs {
        println!("  resource    {id} = {name}");
    }
    let mappings = stack.sqs_mappings()?;
    for m in &mappings {
        println!("  sqs         {} -> {} (batch {})", m.queue_url, m.function.def.logical_id, m.batch_size);
    }
    println!("Ctrl-C stops everything.");
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    for mapping in mappings {
        tokio::spawn(mapping.run(sqs.clone()));
    }
    for schedule in stack.schedules()? {
        tokio::spawn(schedule.run(stack.clock.clone()));
    }

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let api_router = stack.api_router();
    let lambda_router = stack.invoke_router();
    tokio::select! {
        r = axum::serve(api, api_router) => r?,
        r = axum::serve(lambda, lambda_router) => r?,
        () = shutdown => {}
    }
    Ok(())
}
