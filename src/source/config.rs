//! The AWS configuration every client of a process shares (SSM, Secrets Manager, SQS): the
//! SDK's default chain, this program's HTTPS client (rustls on ring) and timeouts, and a
//! region, which is required.

use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_smithy_http_client::tls;
use std::time::Duration;

/// Why the AWS configuration could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error(
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile) or --region"
    )]
    NoRegion,
}

/// The SDK's default chain (see [`super::ssm::Source::from_env`]) with `region` if given,
/// through [`sdk_config`]: one configuration for every AWS client of a process.
pub async fn load_config(region: Option<String>) -> Result<SdkConfig, AwsConfigError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r));
    }
    sdk_config(loader).await
}

/// The SDK configuration every AWS client of this program uses: `loader` plus the HTTPS
/// client (rustls on ring) and the timeouts; a region is required.
pub async fn sdk_config(loader: aws_config::ConfigLoader) -> Result<SdkConfig, AwsConfigError> {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = loader
        .http_client(https)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err(AwsConfigError::NoRegion);
    }
    Ok(config)
}
