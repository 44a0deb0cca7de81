// This file does not parse: the audit reports it as skipped and goes on.
pub async fn half_written() {
    let x = ;
}
