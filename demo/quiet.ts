// Imported first by run.ts, before any AWS SDK module: the demo runs on Node 20 too, and the SDK's
// notice about the Node versions of its 2027 releases is not for this report.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
