#!/usr/bin/env node
// The `ionflux` CLI. TypeScript runs through tsx, the one way every service and the CLI run.
import { register } from 'tsx/esm/api';

register();
await import('../services/cli/main.ts');
