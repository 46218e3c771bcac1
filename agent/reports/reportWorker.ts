/**
 * The worker thread of `parseReportOffThread`: parses one report's bytes and posts the answer.
 * Built beside index.js (tsc) and as dist/reportWorker.js (scripts/bundle.js).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ReportFormat } from '../protocol';
import type { MessageBudget } from './budget';
import { parseReportBytes, type ReportContext } from './index';

const job = workerData as { format: ReportFormat; bytes: Uint8Array; ctx: ReportContext; messages?: MessageBudget };
parentPort?.postMessage(parseReportBytes(job.format, job.bytes, job.ctx, job.messages));
