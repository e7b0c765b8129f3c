/**
 * Which surface a command-line process is: `ci` when a CI system runs it, else `cli`.
 * OKIT_SURFACE=cli|ci overrides the guess (anything else is an input error).
 */
import { OkitError } from '../errors.js';

/**
 * Variables CI systems set, checked in this order. `CI` counts unless empty, `false` or `0`
 * (GitHub Actions, GitLab, Buildkite, CircleCI, Travis, Drone, Woodpecker, Bitbucket, Semaphore
 * and others set it); the rest cover systems that do not set CI.
 */
export const CI_VARIABLES = [
  'CI',
  'GITHUB_ACTIONS',
  'GITLAB_CI',
  'BUILDKITE',
  'CIRCLECI',
  'TRAVIS',
  'JENKINS_URL',
  'TEAMCITY_VERSION',
  'TF_BUILD',
  'BITBUCKET_BUILD_NUMBER',
  'CODEBUILD_BUILD_ID',
  'DRONE',
  'WOODPECKER',
  'SEMAPHORE',
  'APPVEYOR',
] as const;

export type CliSurface = 'cli' | 'ci';

function set(v: string | undefined): boolean {
  return v !== undefined && v !== '' && v.toLowerCase() !== 'false' && v !== '0';
}

export function detectSurface(env: NodeJS.ProcessEnv): CliSurface {
  const forced = env.OKIT_SURFACE;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'cli' && forced !== 'ci') throw new OkitError('INVALID_INPUT', `OKIT_SURFACE: must be cli or ci, got ${JSON.stringify(forced)}`);
    return forced;
  }
  return CI_VARIABLES.some((k) => set(env[k])) ? 'ci' : 'cli';
}
