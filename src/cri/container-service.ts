import type {
  ContainerStatsRequest,
  ContainerStatsResponse,
  ContainerStatusRequest,
  ContainerStatusResponse,
  ListContainerStatsResponse,
  ListContainersResponse,
} from '../gen/runtime/v1/api.js';
import { invalidArgument, notFound } from './errors.js';

/** Longest part of a client's id repeated in an error message. */
const MAX_QUOTED_ID = 80;

/** podnet runs no containers: lists are empty and every id is unknown. */
export class ContainerService {
  listContainers(): ListContainersResponse {
    return { containers: [] };
  }

  listContainerStats(): ListContainerStatsResponse {
    return { stats: [] };
  }

  containerStatus(req: ContainerStatusRequest): ContainerStatusResponse {
    throw this.unknown(req.containerId);
  }

  containerStats(req: ContainerStatsRequest): ContainerStatsResponse {
    throw this.unknown(req.containerId);
  }

  private unknown(id: string): Error {
    if (!id) return invalidArgument('container_id is required');
    const shown = id.length > MAX_QUOTED_ID ? `${id.slice(0, MAX_QUOTED_ID)}…` : id;
    return notFound(`container ${JSON.stringify(shown)} not found: podnet runs no containers (they belong to the container runtime)`);
  }
}
